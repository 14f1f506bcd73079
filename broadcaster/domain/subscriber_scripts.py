"""The subscriber store's Lua scripts (``domain/subscribers.py``).

An import matches thousands of people a second: the script takes its whole chunk as two
JSON arguments (``cjson`` in Redis) rather than thousands of arguments, which redis-py
encodes one by one at more cost than Redis' work on them (docs/performance.md).
"""

from __future__ import annotations

# Each row's person, found or created, atomically. A row's lookups ("ext:…", "email:…",
# "phone:…") are tried in order; an earlier row of the call counts for a lookup the index
# does not know yet. A new person takes the row's proposed id and gets the next creation
# number (seq). Lookups nobody has are claimed for the row's person at once, so the next
# chunk finds them before this one's writes are made. Returns the ids, a 1 for each
# created, the last seq given and the claims (lookup, id, …). KEYS: index, seq. ARGV:
# JSON lookups per row, JSON proposed ids (one per row).
MATCH = """
local rows, proposed = cjson.decode(ARGV[1]), cjson.decode(ARGV[2])
local known, unique = {}, {}
for _, keys in ipairs(rows) do
  for _, key in ipairs(keys) do
    if known[key] == nil then
      known[key] = false
      unique[#unique + 1] = key
    end
  end
end
-- One HMGET per thousand lookups: a redis.call costs about as much as the command.
for i = 1, #unique, 1000 do
  local found = redis.call('HMGET', KEYS[1], unpack(unique, i, math.min(i + 999, #unique)))
  for j = 1, #found do known[unique[i + j - 1]] = found[j] end
end
local ids, created, claims = {}, {}, {}
local new = 0
for i, keys in ipairs(rows) do
  local id = false
  for _, key in ipairs(keys) do
    id = known[key]
    if id then break end
  end
  created[i] = 0
  if not id then
    id = proposed[i]
    created[i] = 1
    new = new + 1
  end
  for _, key in ipairs(keys) do
    if not known[key] then
      known[key] = id
      claims[#claims + 1] = key
      claims[#claims + 1] = id
    end
  end
  ids[i] = id
end
for i = 1, #claims, 1000 do
  redis.call('HSET', KEYS[1], unpack(claims, i, math.min(i + 999, #claims)))
end
local last = 0
if new > 0 then last = redis.call('INCRBY', KEYS[2], new) end
return {ids, created, last, claims}
"""
