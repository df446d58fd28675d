package cluster

import "github.com/redis/go-redis/v9"

// The Lua scripts that change a room's keys. Each runs atomically in Redis,
// which is what orders the cluster: one script decides an update's place,
// holds it and publishes it, with nothing in between.
//
// A room's keys (all with the hash tag {key}, so that they share a slot in
// a Redis Cluster):
//
//	<prefix>:{key}:meta   hash: epoch, seq (the last batch), cp (the
//	                      checkpoint file's name), cpseq (the batch it covers)
//	<prefix>:{key}:log    stream: one entry per update, id <seq>-<i> (the
//	                      i-th update of batch seq), fields u (the Yjs v1
//	                      update) and o (<instance>/<connection>)
//	<prefix>:{key}:ch     channel: every batch and awareness change
//	<prefix>:{key}:aw     hash: awareness client id -> "<ms> <update>"
//	<prefix>:{key}:lease  string: the instance that may checkpoint

// appendScript appends one batch. KEYS: meta, log, ch. ARGV: epoch,
// instance, then (connection, update) pairs. It returns the batch's seq,
// or the error WIREDB_RESET if the room's epoch is not the caller's.
//
// The published message is "U<seq> <instance>\n" and, per update,
// "<connection> <length>\n<update>".
var appendScript = redis.NewScript(`
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch ~= ARGV[1] then
	return redis.error_reply('WIREDB_RESET room epoch is ' .. tostring(epoch) .. ', not ' .. ARGV[1])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local s = string.format('%d', seq)
local msg = {'U', s, ' ', ARGV[2], '\n'}
local n = 0
for i = 3, #ARGV, 2 do
	local conn, u = ARGV[i], ARGV[i + 1]
	redis.call('XADD', KEYS[2], s .. '-' .. n, 'u', u, 'o', ARGV[2] .. '/' .. conn)
	n = n + 1
	msg[#msg + 1] = conn .. ' ' .. string.format('%d', #u) .. '\n'
	msg[#msg + 1] = u
end
redis.call('PUBLISH', KEYS[3], table.concat(msg))
return seq
`)

// joinScript reads a room whole, creating its metadata if it has none.
// KEYS: meta, log, aw. ARGV: a new epoch, the checkpoint to adopt if the
// room is created, and "1" once the caller looked for one. It returns
// {created, epoch, seq, cp, cpseq, the stream after cpseq, the awareness
// hash}, or {-1} for a room without metadata when the caller has not
// looked for a checkpoint yet (a room that exists costs one call).
var joinScript = redis.NewScript(`
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
	if ARGV[3] ~= '1' then
		return {-1}
	end
	redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', 0, 'cpseq', 0, 'cp', ARGV[2])
	created = 1
end
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'cp', 'cpseq')
local cpseq = tonumber(m[4]) or 0
local entries = redis.call('XRANGE', KEYS[2], string.format('%d', cpseq + 1) .. '-0', '+')
local aw = redis.call('HGETALL', KEYS[3])
return {created, m[1], m[2] or '0', m[3] or '', m[4] or '0', entries, aw}
`)

// awarenessScript stores and publishes awareness entries. KEYS: aw, ch.
// ARGV: instance, the awareness update to publish, the hash's time to
// live in ms, then (client id, value) pairs; an empty value deletes. The
// published message is "A<instance>\n<update>".
var awarenessScript = redis.NewScript(`
for i = 4, #ARGV, 2 do
	if ARGV[i + 1] == '' then
		redis.call('HDEL', KEYS[1], ARGV[i])
	else
		redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
	end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', KEYS[2], 'A' .. ARGV[1] .. '\n' .. ARGV[2])
return 1
`)

// releaseLeaseScript gives up the lease if the caller holds it. KEYS:
// lease. ARGV: instance.
var releaseLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// leaseScript takes or renews the checkpoint lease. KEYS: lease. ARGV:
// instance, ms. It returns 1 (renewed), 2 (taken) or 0 (held by another).
var leaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	return 1
end
if cur then
	return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
`)

// commitCheckpointScript points the room at a new checkpoint, if the caller
// still holds the lease and the checkpoint is newer than the current one: a
// compare-and-set, so that a stale holder never replaces newer state. It
// trims the stream up to what the checkpoint it replaces covered: a server
// that lags behind the new one (a lost message it has yet to repair) can
// still read what it missed, and the stream stays within two checkpoint
// intervals. KEYS: meta, log, lease. ARGV:
// epoch, instance, name, seq. It returns {status, cpseq, cp}: status 1
// (committed; cp is the one it replaced), 0 (lease lost) or -1 (stale).
var commitCheckpointScript = redis.NewScript(`
local m = redis.call('HMGET', KEYS[1], 'epoch', 'cpseq', 'cp')
if m[1] ~= ARGV[1] then
	return redis.error_reply('WIREDB_RESET room epoch is ' .. tostring(m[1]) .. ', not ' .. ARGV[1])
end
if redis.call('GET', KEYS[3]) ~= ARGV[2] then
	return {0, m[2] or '0', m[3] or ''}
end
local seq = tonumber(ARGV[4])
if (tonumber(m[2]) or 0) >= seq then
	return {-1, m[2] or '0', m[3] or ''}
end
redis.call('HSET', KEYS[1], 'cp', ARGV[3], 'cpseq', ARGV[4])
redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', (tonumber(m[2]) or 0) + 1) .. '-0')
return {1, ARGV[4], m[3] or ''}
`)
