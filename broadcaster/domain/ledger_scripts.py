"""The delivery ledger's Lua scripts (``domain/ledger.py``): each move, claim and renewal is
one atomic call that keeps the per-channel counts with the states."""

from __future__ import annotations

# Lua's redis.call costs about as much as the command itself: a script reads every
# recipient's state with one HMGET, decides in Lua, and makes every write (states, counts,
# index, leases, the reached set) once per call, in chunks that stay within Lua's stack.
BULK = """
local function bulk(command, key, items)
  for i = 1, #items, 1000 do
    redis.call(command, key, unpack(items, i, math.min(i + 999, #items)))
  end
end
local function states_of(key, ids)
  local states = {}
  for i = 1, #ids, 1000 do
    local part = redis.call('HMGET', key, unpack(ids, i, math.min(i + 999, #ids)))
    for j = 1, #part do states[i + j - 1] = part[j] end
  end
  return states
end
"""

# KEYS: state, counts, index, leases[, reached]. ARGV: channel, to state, from states, ids…
# ("new" as the only from state: recording new deliveries, the fan-out's hot path).
TRANSITION = (
    BULK
    + """
local channel, to = ARGV[1], ARGV[2]
local allowed = {}
for s in string.gmatch(ARGV[3], '[^,]+') do allowed[s] = true end
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
local stored = states_of(KEYS[1], ids)
local now = {}  -- states set by this call: an id given twice sees its first move
local moved, sets, from, fresh, unleased = {}, {}, {}, {}, {}
for i, sub in ipairs(ids) do
  local cur = now[sub]
  if cur == nil then cur = stored[i] end
  if allowed[cur or 'new'] then
    now[sub] = to
    sets[#sets + 1] = sub
    sets[#sets + 1] = to
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
bulk('HSET', KEYS[1], sets)
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
local ids = {}
for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
local stored = states_of(KEYS[1], ids)
local claimed, leases, seen, sets = {}, {}, {}, {}
local from_queue = 0
for i, sub in ipairs(ids) do
  local cur = not seen[sub] and stored[i]
  local take = cur == 'queued'
  if cur == 'sending' then
    -- A claim without a lease predates leases: leave it to whoever made it.
    local lease = tonumber(redis.call('HGET', KEYS[4], sub) or '-1')
    take = lease >= 0 and lease < now
  end
  if take then
    seen[sub] = true
    if cur == 'queued' then
      sets[#sets + 1] = sub
      sets[#sets + 1] = 'sending'
      from_queue = from_queue + 1
    end
    leases[#leases + 1] = sub
    leases[#leases + 1] = until_
    claimed[#claimed + 1] = sub
  end
end
bulk('HSET', KEYS[1], sets)
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
