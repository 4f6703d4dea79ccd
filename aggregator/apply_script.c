/* apply_script.c -- the Lua script that writes one partition's batch.
 *
 * The counting happens in the aggregator's memory (apply.c); the script only
 * writes the contract keys of the streams the batch changed, atomically with
 * the partition's offset, and only when Redis holds the offset the caller
 * expects (so a fenced or stale instance writes nothing).
 *
 * Keys (all of partition P, prefix p = "vc:{vc.P}:", one hash slot):
 *   KEYS[1] = p.."meta"  HASH offset
 *   p.."s:"..S           HASH viewers, peak, status, offset, cat
 *   p.."rank"            ZSET stream -> viewers, streams with viewers > 0
 *   p.."rank:c:"..C      ZSET the same per category
 *
 * ARGV: 1 prefix, 2 the offset Redis holds after the call, 3 the offset this
 * call expects Redis to hold (-1: none, the meta hash is absent), 4 the number
 * of streams n, then n times: stream viewers peak status offset cat (cat ""
 * when unknown). Reply: {0} or, when Redis does not hold the expected offset,
 * {1, stored} (stored -1: no meta hash). */
#include "apply.h"

const char agg_apply_script[] =
    "local meta = KEYS[1]\n"
    "local call = redis.call\n"
    "local stored = tonumber(call('HGET', meta, 'offset') or '-1')\n"
    "if stored ~= tonumber(ARGV[3]) then return {1, stored} end\n"
    "local p = ARGV[1]\n"
    "local n = tonumber(ARGV[4])\n"
    "local za, zr, ca, cr = {}, {}, {}, {}\n"
    "local i = 5\n"
    "for k = 1, n do\n"
    "  local id, v, cat = ARGV[i], ARGV[i + 1], ARGV[i + 5]\n"
    "  if cat == '' then\n"
    "    call('HSET', p..'s:'..id, 'viewers', v, 'peak', ARGV[i + 2], 'status', ARGV[i + 3], 'offset', ARGV[i + 4])\n"
    "  else\n"
    "    call('HSET', p..'s:'..id, 'viewers', v, 'peak', ARGV[i + 2], 'status', ARGV[i + 3], 'offset', ARGV[i + 4], 'cat', cat)\n"
    "  end\n"
    "  if v ~= '0' then\n"
    "    za[#za + 1] = v za[#za + 1] = id\n"
    "    if cat ~= '' then\n"
    "      local l = ca[cat]\n"
    "      if not l then l = {} ca[cat] = l end\n"
    "      l[#l + 1] = v l[#l + 1] = id\n"
    "    end\n"
    "  else\n"
    "    zr[#zr + 1] = id\n"
    "    if cat ~= '' then\n"
    "      local l = cr[cat]\n"
    "      if not l then l = {} cr[cat] = l end\n"
    "      l[#l + 1] = id\n"
    "    end\n"
    "  end\n"
    "  i = i + 6\n"
    "end\n"
    "local function bulk(cmd, key, list)\n"
    "  local m = #list\n"
    "  for a = 1, m, 1000 do\n"
    "    local b = a + 999\n"
    "    if b > m then b = m end\n"
    "    call(cmd, key, unpack(list, a, b))\n"
    "  end\n"
    "end\n"
    "if #za > 0 then bulk('ZADD', p..'rank', za) end\n"
    "if #zr > 0 then bulk('ZREM', p..'rank', zr) end\n"
    "for cat, l in pairs(ca) do bulk('ZADD', p..'rank:c:'..cat, l) end\n"
    "for cat, l in pairs(cr) do bulk('ZREM', p..'rank:c:'..cat, l) end\n"
    "if tonumber(ARGV[2]) ~= stored then call('HSET', meta, 'offset', ARGV[2]) end\n"
    "return {0}\n";
