"""The delivery ledger's Lua scripts (``domain/ledger.py``): each move, claim and renewal is
one atomic call that keeps the per-channel counts with the states."""

from __future__ import annotations

# Lua's redis.call costs about as much as the command itself: per recipient, a script
# reads and sets the state, and every other write (counts, index, leases, the reached set)
# is gathered and made once per call, in chunks that stay within Lua's stack.
BULK = """
local function bulk(command, key, items)
  for i = 1, #items, 1000 do
    redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))
  end
end
"""

# KEYS: state, counts, index, leases[, reached]. ARGV: channel, to state, from states, ids…
TRANSITION = (
    BULK
    + """
local channel, to = ARGV[1], ARGV[2]
local allowed = {}
for s in string.gmatch(ARGV[3], '[^,]+') do allowed[s] = true end
local only_new = ARGV[3] == 'new'
local moved, from, fresh, unleased = {}, {}, {}, {}
for i = 4, #ARGV do
  local sub = ARGV[i]
  if only_new then
    -- Recording new deliveries (the fan-out's hot path): set-if-absent in one call.
    if redis.call('HSETNX', KEYS[1], sub, to) == 1 then
      fresh[#fresh + 1] = 0
      fresh[#fresh + 1] = channel .. ':' .. sub
      moved[#moved + 1] = sub
    end
  else
    local cur = redis.call('HGET', KEYS[1], sub)
    if allowed[cur or 'new'] then
      redis.call('HSET', KEYS[1], sub, to)
      if cur then
        from[cur] = (from[cur] or 0) + 1
        if cur == 'sending' then unleased[#unleased + 1] = sub end
      else
        fresh[#fresh + 1] = 0
        fresh[#fresh + 1] = channel .. ':' .. sub
      end
      moved[#moved + 1] = sub
    end
  end
end
for state, n in pairs(from) do redis.call('HINCRBY', KEYS[2], channel .. ':' .. state, -n) end
if #moved > 0 then redis.call('HINCRBY', KEYS[2], channel .. ':' .. to, #moved) end
bulk('HDEL', KEYS[4], unleased)
bulk('ZADD', KEYS[3], fresh)
if KEYS[5] then bulk('SADD', KEYS[5], moved) end
return moved
"""
)

# Claim: queued, or sending whose lease ran out (its holder died). Redis' clock decides.
# KEYS: state, counts, index, leases. ARGV: channel, lease (ms), ids…
CLAIM = (
    BULK
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ = now + tonumber(ARGV[2])
local claimed, leases, seen = {}, {}, {}
local from_queue = 0
for i = 3, #ARGV do
  local sub = ARGV[i]
  local cur = not seen[sub] and redis.call('HGET', KEYS[1], sub)
  local take = cur == 'queued'
  if cur == 'sending' then
    -- A claim without a lease predates leases: leave it to whoever made it.
    local lease = tonumber(redis.call('HGET', KEYS[4], sub) or '-1')
    take = lease >= 0 and lease < now
  end
  if take then
    seen[sub] = true
    if cur == 'queued' then
      redis.call('HSET', KEYS[1], sub, 'sending')
      from_queue = from_queue + 1
    end
    leases[#leases + 1] = sub
    leases[#leases + 1] = until_
    claimed[#claimed + 1] = sub
  end
end
if from_queue > 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[1] .. ':queued', -from_queue)
  redis.call('HINCRBY', KEYS[2], ARGV[1] .. ':sending', from_queue)
end
bulk('HSET', KEYS[4], leases)
return claimed
"""
)

# Renew the leases of claims still in ``sending``. KEYS: state, leases. ARGV: lease ms, ids…
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == 'sending' then
    redis.call('HSET', KEYS[2], ARGV[i], now + tonumber(ARGV[1]))
    n = n + 1
  end
end
return n
"""
