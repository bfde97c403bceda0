-- Refresh grants (scripts/bench-http.sh): every wrk thread rotates a refresh chain of its own,
-- from the token on its line of WRK_REFRESH_TOKENS, presenting each answer's successor next.
-- Run with as many threads as connections (-tN -cN): the chain is the thread's, and a thread
-- with one connection sends its next request only after the previous answer.
-- A refused grant breaks that chain for good: the run shows it as non-2xx answers.
local path = assert(os.getenv("WRK_REFRESH_TOKENS"), "WRK_REFRESH_TOKENS is not set")
local tokens = {}
for line in io.lines(path) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local threads = 0

function setup(thread)
  threads = threads + 1
  assert(tokens[threads], "fewer refresh tokens in " .. path .. " than wrk threads")
  thread:set("first_token", tokens[threads])
end

local refresh
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  refresh = first_token
end

function request()
  return wrk.format("POST", "/api/org_token/refresh/", headers, '{"refresh":"' .. refresh .. '"}')
end

function response(status, _, body)
  if status == 200 then
    refresh = body:match('"refresh"%s*:%s*"([^"]+)"') or refresh
  end
end
