"""redis-py (PyPI) against helios: strings, hashes, sets and lists, in RESP2 and RESP3,
plain and pipelined. Usage: redis_py.py HOST PORT. Exit status 3 when redis-py is not installed;
prints "all checks passed" at the end."""

import sys

try:
    import redis
except ImportError:
    print("redis-py is not installed", file=sys.stderr)
    sys.exit(3)


def check(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def run(host, port, protocol):
    r = redis.Redis(host=host, port=port, protocol=protocol, decode_responses=True)
    p = f"p{protocol}:"
    r.delete(p + "s", p + "h", p + "h2", p + "big")

    # Strings and type errors in both directions.
    check(r.set(p + "s", "v"), True, "SET")
    check(r.get(p + "s"), "v", "GET")
    try:
        r.hget(p + "s", "f")
        raise AssertionError("HGET on a string did not fail")
    except redis.ResponseError as e:
        check(str(e).startswith("WRONGTYPE"), True, "HGET on a string")

    # Hashes.
    check(r.hset(p + "h", mapping={"name": "ada", "lang": "en", "n": "1"}), 3, "HSET mapping")
    check(r.hset(p + "h", "name", "grace"), 0, "HSET existing")
    check(r.hget(p + "h", "name"), "grace", "HGET")
    check(r.hmget(p + "h", ["name", "nope", "lang"]), ["grace", None, "en"], "HMGET")
    check(r.hgetall(p + "h"), {"name": "grace", "lang": "en", "n": "1"}, "HGETALL")
    check(r.hgetall(p + "missing"), {}, "HGETALL missing")
    check(r.hkeys(p + "h"), ["name", "lang", "n"], "HKEYS keeps insertion order")
    check(r.hvals(p + "h"), ["grace", "en", "1"], "HVALS")
    check(r.hlen(p + "h"), 3, "HLEN")
    check(r.hexists(p + "h", "lang"), True, "HEXISTS")
    check(r.hstrlen(p + "h", "name"), 5, "HSTRLEN")
    check(r.hincrby(p + "h", "n", 41), 42, "HINCRBY")
    check(r.hincrbyfloat(p + "h", "f", "0.1"), 0.1, "HINCRBYFLOAT")
    check(r.hsetnx(p + "h", "n", "0"), False, "HSETNX existing")
    check(r.hdel(p + "h", "lang", "nope"), 1, "HDEL")
    check(r.type(p + "h"), "hash", "TYPE")
    try:
        r.hincrby(p + "h", "name", 1)
        raise AssertionError("HINCRBY on text did not fail")
    except redis.ResponseError as e:
        check(str(e), "hash value is not an integer", "HINCRBY on text")
    check(sorted(r.hrandfield(p + "h", 10)), ["f", "n", "name"], "HRANDFIELD count >= size")
    pairs = r.hrandfield(p + "h", -5, withvalues=True)
    # redis-py hands back five [field, value] pairs or the flat list, by version.
    check(len(pairs) in (5, 10), True, f"HRANDFIELD -5 WITHVALUES: {pairs!r}")
    check(r.hrandfield(p + "missing"), None, "HRANDFIELD missing")

    # A big hash: HSCAN walks it in pages and returns every field.
    r.hset(p + "big", mapping={f"f{i}": str(i) for i in range(500)})
    seen = dict(r.hscan_iter(p + "big", count=50))
    check(len(seen), 500, "HSCAN walk of a big hash")
    check(seen["f499"], "499", "HSCAN value")
    check(dict(r.hscan_iter(p + "big", match="f49?")), {f"f49{i}": f"49{i}" for i in range(10)}, "HSCAN MATCH")

    # Pipelined, and moved across keys.
    with r.pipeline(transaction=False) as pipe:
        pipe.hset(p + "h2", "a", "1")
        pipe.hincrby(p + "h2", "a", 1)
        pipe.expire(p + "h2", 100)
        pipe.hgetall(p + "h2")
        check(pipe.execute(), [1, 2, True, {"a": "2"}], "pipeline")
    check(r.rename(p + "h2", p + "h3"), True, "RENAME")
    check(r.hgetall(p + "h3"), {"a": "2"}, "renamed hash")
    check(0 < r.ttl(p + "h3") <= 100, True, "renamed hash keeps its TTL")
    check(r.delete(p + "big", p + "h3"), 2, "DEL hashes")
    check(r.exists(p + "big"), 0, "deleted")

    # Sets (keys spread over the shards: the multi-key forms run across them).
    r.delete(p + "s1", p + "s2", p + "s3")
    check(r.sadd(p + "s1", "a", "b", "c", "a"), 3, "SADD")
    check(r.sadd(p + "s2", "b", "c", "d"), 3, "SADD")
    check(r.smembers(p + "s1"), {"a", "b", "c"}, "SMEMBERS")
    check(r.sismember(p + "s1", "a"), True, "SISMEMBER")
    check(r.smismember(p + "s1", ["a", "z"]), [True, False], "SMISMEMBER")
    check(r.scard(p + "s1"), 3, "SCARD")
    check(r.sinter(p + "s1", p + "s2"), {"b", "c"}, "SINTER")
    check(r.sunion(p + "s1", p + "s2"), {"a", "b", "c", "d"}, "SUNION")
    check(r.sdiff(p + "s1", p + "s2"), {"a"}, "SDIFF")
    check(r.sinterstore(p + "s3", [p + "s1", p + "s2"]), 2, "SINTERSTORE")
    check(r.smembers(p + "s3"), {"b", "c"}, "stored")
    check(r.sintercard(2, [p + "s1", p + "s2"], limit=1), 1, "SINTERCARD LIMIT")
    check(r.smove(p + "s1", p + "s2", "a"), True, "SMOVE")
    check(r.srem(p + "s1", "b", "zz"), 1, "SREM")
    check(r.spop(p + "s1", 10), ["c"], "SPOP count")
    check(r.exists(p + "s1"), 0, "popped empty")
    check(sorted(r.srandmember(p + "s2", 10)), ["a", "b", "c", "d"], "SRANDMEMBER")
    check(set(r.sscan_iter(p + "s2")), {"a", "b", "c", "d"}, "SSCAN")
    check(r.type(p + "s2"), "set", "TYPE")

    # Lists.
    r.delete(p + "l1", p + "l2")
    check(r.rpush(p + "l1", "b", "c"), 2, "RPUSH")
    check(r.lpush(p + "l1", "a"), 3, "LPUSH")
    check(r.lrange(p + "l1", 0, -1), ["a", "b", "c"], "LRANGE")
    check(r.lindex(p + "l1", -1), "c", "LINDEX")
    check(r.lset(p + "l1", 1, "B"), True, "LSET")
    check(r.linsert(p + "l1", "BEFORE", "c", "b2"), 4, "LINSERT")
    check(r.lpos(p + "l1", "c"), 3, "LPOS")
    check(r.lrem(p + "l1", 0, "b2"), 1, "LREM")
    check(r.lmove(p + "l1", p + "l2", "LEFT", "RIGHT"), "a", "LMOVE")
    check(r.rpoplpush(p + "l1", p + "l2"), "c", "RPOPLPUSH")
    check(r.lrange(p + "l2", 0, -1), ["c", "a"], "moved")
    check(r.lmpop(2, p + "missing", p + "l2", direction="RIGHT", count=5), [p + "l2", ["a", "c"]], "LMPOP")
    check(r.exists(p + "l2"), 0, "popped empty")
    check(r.ltrim(p + "l1", 0, 0), True, "LTRIM")
    check(r.rpop(p + "l1", 3), ["B"], "RPOP count")
    check(r.llen(p + "l1"), 0, "LLEN")

    # Sorted sets (the combining commands run across the shards).
    pairs = lambda items: [(m, float(s)) for m, s in items]
    r.delete(p + "z1", p + "z2", p + "z3")
    check(r.zadd(p + "z1", {"a": 1, "b": 2.5, "c": 3}), 3, "ZADD")
    check(r.zadd(p + "z1", {"a": 5}, gt=True, ch=True), 1, "ZADD GT CH")
    check(r.zadd(p + "z2", {"b": 10, "d": -1}), 2, "ZADD")
    check(r.zincrby(p + "z1", 0.5, "b"), 3.0, "ZINCRBY")
    check(r.zscore(p + "z1", "a"), 5.0, "ZSCORE")
    check(r.zmscore(p + "z1", ["a", "nope"]), [5.0, None], "ZMSCORE")
    check(r.zcard(p + "z1"), 3, "ZCARD")
    check(r.zcount(p + "z1", "(3", "+inf"), 1, "ZCOUNT")
    check(pairs(r.zrange(p + "z1", 0, -1, withscores=True)), [("b", 3.0), ("c", 3.0), ("a", 5.0)], "ZRANGE")
    check(r.zrange(p + "z1", "+inf", 4, byscore=True, desc=True), ["a"], "ZRANGE BYSCORE REV")
    check(r.zrank(p + "z1", "c"), 1, "ZRANK")
    check(r.zrevrank(p + "z1", "c"), 1, "ZREVRANK")
    check(pairs(r.zunion([p + "z1", p + "z2"], withscores=True)),
          [("d", -1.0), ("c", 3.0), ("a", 5.0), ("b", 13.0)], "ZUNION")
    check(r.zinterstore(p + "z3", {p + "z1": 2, p + "z2": 1}), 1, "ZINTERSTORE WEIGHTS")
    check(pairs(r.zrange(p + "z3", 0, -1, withscores=True)), [("b", 16.0)], "stored")
    check(r.zdiff([p + "z1", p + "z2"]), ["c", "a"], "ZDIFF")
    check(r.zintercard(2, [p + "z1", p + "z2"]), 1, "ZINTERCARD")
    check(pairs(r.zpopmin(p + "z1", 1)), [("b", 3.0)], "ZPOPMIN")
    check(pairs(r.zpopmax(p + "z1", 5)), [("a", 5.0), ("c", 3.0)], "ZPOPMAX count")
    check(r.exists(p + "z1"), 0, "popped empty")
    r.zadd(p + "zl", {"a": 0, "b": 0, "c": 0})
    check(r.zrangebylex(p + "zl", "(a", "+"), ["b", "c"], "ZRANGEBYLEX")
    check(r.zremrangebylex(p + "zl", "[a", "[b"), 2, "ZREMRANGEBYLEX")
    check(dict(r.zscan_iter(p + "z2")), {"d": -1.0, "b": 10.0}, "ZSCAN")
    check(r.type(p + "z2"), "zset", "TYPE")

    # Pub/sub: a subscriber on its own connection, messages published from this one.
    ps = r.pubsub()
    ps.subscribe(p + "chan")
    ps.psubscribe(p + "pat.*")
    got = [ps.get_message(timeout=5)["type"] for _ in range(2)]
    check(got, ["subscribe", "psubscribe"], "subscribed")
    check(r.publish(p + "chan", "hi"), 1, "PUBLISH")
    check(r.publish(p + "pat.x", "yo"), 1, "PUBLISH pattern")
    m1 = ps.get_message(timeout=5)
    m2 = ps.get_message(timeout=5)
    check((m1["type"], m1["channel"], m1["data"]), ("message", p + "chan", "hi"), "message")
    check((m2["type"], m2["pattern"], m2["data"]), ("pmessage", p + "pat.*", "yo"), "pmessage")
    check(r.pubsub_numsub(p + "chan"), [(p + "chan", 1)], "PUBSUB NUMSUB")
    ps.close()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    for protocol in (2, 3):
        run(host, port, protocol)
    print("all checks passed")


if __name__ == "__main__":
    main()
