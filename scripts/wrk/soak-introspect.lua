-- POST /oauth/introspect of one access token, as an introspector's broker session (scripts/soak.sh).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SOAK_SESSION_TOKEN")
wrk.body = "token=" .. os.getenv("SOAK_ACCESS_TOKEN")
