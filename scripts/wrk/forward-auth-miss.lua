-- Forward-auth, miss path: the tokens of WRK_TOKENS (one a line) in turn, one per request.
-- Against a gateway whose cache holds fewer tokens than the file, each token has been evicted
-- by the time it comes round again, so every request verifies a signature.
local path = assert(os.getenv("WRK_TOKENS"), "WRK_TOKENS is not set")
local tokens = {}
for line in io.lines(path) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
assert(#tokens > 0, "no token in " .. path)

local requests = {}
local turn = 0

function init(args)
  -- Formatted once: Host is known only from here on.
  for index, token in ipairs(tokens) do
    requests[index] = wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token, ["Host"] = wrk.headers["Host"] })
  end
end

function request()
  turn = turn % #requests + 1
  return requests[turn]
end
