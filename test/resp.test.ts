/**
 * The RESP2 (Redis protocol) front end, driven by real Redis clients against a real
 * `pikv serve` process on free loopback ports: redis-cli (one command at a time, and --pipe
 * bulk loading), ioredis (ordinary and pipelined calls) and redis-py, plus a raw socket where
 * the exact bytes matter. Tests whose tool is missing skip with a message; .ci/run installs
 * redis-tools and python3-redis.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { connect, type PikvClient } from '../src/index.js';
import type { NodeStats } from '../src/node/stats.js';
import { runCli, startServer, CLI_PATH, type ServerProcess } from './helpers/server-process.js';
import { encodeCommand, findRedisCli, findRedisPython, RespError, RespSocket, runTool, type RespValue } from './helpers/resp-socket.js';

const REDIS_CLI = findRedisCli();
const PYTHON = findRedisPython();
const NO_REDIS_CLI = REDIS_CLI === null ? 'redis-cli is not installed (Debian: apt-get install redis-tools)' : false;
const NO_PYTHON = PYTHON === null ? 'redis-py is not installed (Debian: apt-get install python3-redis)' : false;

function text(value: RespValue): string {
  if (Buffer.isBuffer(value)) return value.toString();
  if (value instanceof RespError) return `-${value.message}`;
  return String(value);
}

function errorText(value: RespValue): string {
  assert.ok(value instanceof RespError, `expected an error reply, got ${JSON.stringify(value)}`);
  return value.message;
}

/** A flat RESP array of name/value pairs as a Map (HELLO, COMMAND DOCS). */
function pairs(value: RespValue): Map<string, RespValue> {
  assert.ok(Array.isArray(value), `expected an array, got ${JSON.stringify(value)}`);
  const map = new Map<string, RespValue>();
  for (let i = 0; i < value.length; i += 2) map.set(text(value[i]!), value[i + 1]!);
  return map;
}

async function withSocket<T>(port: number, use: (socket: RespSocket) => Promise<T>): Promise<T> {
  const socket = await RespSocket.open(port);
  try {
    return await use(socket);
  } finally {
    socket.close();
  }
}

describe('RESP2 front end', { timeout: 180_000 }, () => {
  let server: ServerProcess;
  let port: number;
  let kv: PikvClient;

  before(async () => {
    server = await startServer(['--workers', '2', '--resp-port', '0']);
    assert.ok(server.resp_port !== null && server.resp_port > 0, `serve prints its RESP address:\n${server.output()}`);
    port = server.resp_port;
    kv = await connect(server.url);
  });
  after(async () => {
    await kv?.close();
    assert.equal(await server?.stop(), 0, 'server exits 0 on SIGTERM');
  });

  it('prints its RESP address before the line tools wait for', () => {
    assert.match(server.output(), /^pikv RESP \(Redis protocol\) on redis:\/\/127\.0\.0\.1:\d+: redis-cli -p \d+\npikv listening on ws:/m);
  });

  it('answers redis-cli one command at a time', { skip: NO_REDIS_CLI }, async () => {
    const cli = async (...args: string[]): Promise<string> => {
      const result = await runTool(REDIS_CLI!, ['-p', String(port), ...args]);
      assert.equal(result.stderr, '', `redis-cli ${args.join(' ')}`);
      return result.stdout.trimEnd();
    };
    assert.equal(await cli('ping'), 'PONG');
    assert.equal(await cli('ping', 'hello there'), 'hello there');
    assert.equal(await cli('set', 'cli:greeting', 'hello world'), 'OK');
    assert.equal(await cli('get', 'cli:greeting'), 'hello world');
    assert.equal(await cli('get', 'cli:absent'), '');
    assert.equal(await cli('mset', 'cli:a', '1', 'cli:b', '2'), 'OK');
    assert.equal(await cli('mget', 'cli:a', 'cli:absent', 'cli:b'), '1\n\n2');
    assert.equal(await cli('exists', 'cli:a', 'cli:b', 'cli:absent', 'cli:a'), '3');
    assert.equal(await cli('del', 'cli:a', 'cli:absent'), '1');
    assert.equal(await cli('unlink', 'cli:b'), '1');
    assert.equal(await cli('echo', 'bytes'), 'bytes');
    assert.equal(await cli('select', '0'), 'OK');
    assert.match(await cli('select', '1'), /^ERR DB index is out of range/);
    assert.equal(await cli('set', 'cli:t', 'v', 'EX', '10'), 'OK');
    assert.match(await cli('set', 'cli:t', 'v', 'EX', '0'), /^ERR invalid expire time in 'set' command/);
    assert.equal(await cli('set', 'cli:t', 'v', 'NX'), '', 'SET NX on an existing key writes nothing (nil)');
    assert.match(await cli('set', 'cli:t', 'v', 'bogus'), /^ERR syntax error/);
    assert.match(await cli('msetnx', 'cli:greeting', 'x'), /^ERR MSETNX is not supported yet/);
    assert.match(await cli('flushall'), /^ERR FLUSHALL is disabled on this node: start it with --allow-flush/);
    assert.equal(await cli('get', 'cli:greeting'), 'hello world', 'an unsupported command changed nothing');
    assert.equal(await cli('frobnicate', 'x', 'y'), 'ERR unknown command \'frobnicate\', with args beginning with: \'x\' \'y\'');
    assert.match(await cli('get'), /^ERR wrong number of arguments for 'get' command/);
    assert.match(await cli('info', 'server'), /redis_version:7\.0\.0\r?\npikv_version:/);
  });

  it('loads a few thousand SETs with redis-cli --pipe, binary values included', { skip: NO_REDIS_CLI }, async () => {
    const count = 5000;
    const parts: Buffer[] = [];
    for (let i = 0; i < count; i++) parts.push(encodeCommand('SET', `pipe:${i}`, i % 100 === 0 ? Buffer.from([0, 13, 10, 255, i & 0xff]) : `value-${i}`));
    const result = await runTool(REDIS_CLI!, ['-p', String(port), '--pipe'], Buffer.concat(parts));
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, new RegExp(`errors: 0, replies: ${count}`));
    // The same data, read back through the other protocol.
    assert.equal(Buffer.from((await kv.get('pipe:4999'))!).toString(), 'value-4999');
    assert.deepEqual(Buffer.from((await kv.get('pipe:200'))!), Buffer.from([0, 13, 10, 255, 200]));
  });

  it('serves ioredis: start-up, ordinary calls and a pipeline', async () => {
    // ioredis 6 opens with HELLO 3 and falls back to RESP2 on NOPROTO, then CLIENT SETNAME/SETINFO and INFO.
    const redis = new Redis({ port, host: '127.0.0.1', connectionName: 'ioredis-test', maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      assert.equal(await redis.set('io:1', 'one'), 'OK');
      assert.equal(await redis.get('io:1'), 'one');
      assert.equal(await redis.get('io:absent'), null);
      assert.equal(await redis.call('client', 'getname'), 'ioredis-test');
      assert.equal(await redis.exists('io:1', 'io:absent'), 1);
      const pipeline = redis.pipeline();
      for (let i = 0; i < 2000; i++) pipeline.set(`io:p${i}`, `v${i}`);
      pipeline.get('io:p1999').mget('io:p0', 'io:absent', 'io:p1').del('io:p0', 'io:p1', 'io:absent').dbsize();
      const results = await pipeline.exec();
      assert.ok(results !== null);
      assert.equal(results.length, 2004);
      for (let i = 0; i < 2000; i++) assert.deepEqual(results[i], [null, 'OK']);
      assert.deepEqual(results[2000], [null, 'v1999']);
      assert.deepEqual(results[2001], [null, ['v0', null, 'v1']]);
      assert.deepEqual(results[2002], [null, 2]);
      assert.ok((results[2003]![1] as number) >= 1998);
      assert.equal(await redis.set('io:ttl', 'v', 'EX', 10), 'OK');
      const ttl = await redis.ttl('io:ttl');
      assert.ok(ttl === 10 || ttl === 9, `TTL ${ttl}`);
      assert.equal(await redis.persist('io:ttl'), 1);
      assert.equal(await redis.pttl('io:ttl'), -1);
      await assert.rejects(redis.call('msetnx', 'io:ttl', 'v'), /MSETNX is not supported yet/);
      assert.equal(await redis.ping(), 'PONG', 'an error reply leaves the connection usable');
      // Binary values survive.
      const bytes = Buffer.from([0, 1, 2, 254, 255, 13, 10]);
      await redis.set('io:bin', bytes);
      assert.deepEqual(await redis.getBuffer('io:bin'), bytes);
    } finally {
      redis.disconnect();
    }
  });

  it('serves redis-py', { skip: NO_PYTHON }, async () => {
    const script = `
import sys, redis
r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), socket_timeout=10)
assert r.ping() is True
assert r.set('py:k', b'\\x00\\xffbytes') is True
assert r.get('py:k') == b'\\x00\\xffbytes'
assert r.get('py:absent') is None
assert r.mset({'py:a': '1', 'py:b': '2'}) is True
assert r.mget(['py:a', 'py:absent', 'py:b']) == [b'1', None, b'2']
assert r.exists('py:a', 'py:b') == 2
assert r.delete('py:a', 'py:absent') == 1
p = r.pipeline(transaction=False)
for i in range(1000):
    p.set('py:p%d' % i, i)
p.get('py:p999')
results = p.execute()
assert results[:1000] == [True] * 1000 and results[1000] == b'999', results[995:]
info = r.info()
assert info['redis_version'] == '7.0.0' and info['db0']['keys'] >= 1000, info
assert r.dbsize() >= 1000
assert r.set('py:t', 'v', ex=10) is True
assert r.ttl('py:t') in (9, 10), r.ttl('py:t')
assert r.setex('py:t2', 5, 'v') is True and 0 < r.pttl('py:t2') <= 5000
assert r.expire('py:t2', 100) is True and r.ttl('py:t2') >= 99
assert r.persist('py:t2') is True and r.ttl('py:t2') == -1
try:
    r.msetnx({'py:t': 'v'})
    raise SystemExit('MSETNX should have failed')
except redis.ResponseError as error:
    assert 'not supported yet' in str(error)
print('redis-py ok')
`;
    const result = await runTool(PYTHON!, ['-c', script, String(port)]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /redis-py ok/);
  });

  it('answers a pipeline of one write in order, in few engine batches', async () => {
    const before_stats = await kv.stats() as unknown as NodeStats; // the client types STATS loosely
    const batches_before = before_stats.per_worker.reduce((sum, worker) => sum + worker.batches, 0);
    await withSocket(port, async (socket) => {
      const commands: Buffer[] = [];
      const expected: string[] = [];
      for (let i = 0; i < 500; i++) {
        commands.push(encodeCommand('SET', `order:${i % 7}`, `v${i}`), encodeCommand('GET', `order:${i % 7}`), encodeCommand('PING'));
        expected.push('OK', `v${i}`, 'PONG');
        if (i % 50 === 49) {
          commands.push(encodeCommand('DEL', `order:${i % 7}`), encodeCommand('GET', `order:${i % 7}`), encodeCommand('ECHO', `e${i}`));
          expected.push('1', 'null', `e${i}`);
        }
      }
      socket.send(Buffer.concat(commands));
      for (const want of expected) assert.equal(text(await socket.reply()), want);
    });
    const after_stats = await kv.stats() as unknown as NodeStats; // the client types STATS loosely
    const batches = after_stats.per_worker.reduce((sum, worker) => sum + worker.batches, 0) - batches_before;
    // 1,020 data commands; a read of up to 64 KiB is one batch, so each worker sees a few packets.
    assert.ok(batches <= 20, `${batches} worker batches for one pipelined write`);
  });

  it('shares its data with the WebSocket protocol', async () => {
    await kv.put('shared:from-ws', 'ws value');
    await withSocket(port, async (socket) => {
      assert.equal(text(await socket.call('GET', 'shared:from-ws')), 'ws value');
      assert.equal(text(await socket.call('SET', 'shared:from-resp', 'resp value')), 'OK');
    });
    assert.equal(Buffer.from((await kv.get('shared:from-resp'))!).toString(), 'resp value');
  });

  it('names pikv\'s error code in errors and keeps the connection open', async () => {
    await withSocket(port, async (socket) => {
      const long_key = 'k'.repeat(2000);
      assert.match(errorText(await socket.call('SET', long_key, 'v')), /^ERR KEY_TOO_LARGE .*key_bytes_max is 1024/);
      assert.match(errorText(await socket.call('GET', long_key)), /^ERR KEY_TOO_LARGE/);
      assert.match(errorText(await socket.call('MSET', 'ok:1', 'v', long_key, 'v')), /^ERR KEY_TOO_LARGE/);
      assert.match(errorText(await socket.call('DEL', long_key)), /^ERR KEY_TOO_LARGE/);
      assert.equal(text(await socket.call('PING')), 'PONG');
    });
  });

  it('INFO reports the sections with the node\'s numbers', async () => {
    await withSocket(port, async (socket) => {
      const info = text(await socket.call('INFO'));
      for (const section of ['Server', 'Clients', 'Memory', 'Persistence', 'Stats', 'Keyspace', 'Cluster']) assert.match(info, new RegExp(`^# ${section}\\r$`, 'm'));
      const field = (name: string): string => new RegExp(`^${name}:(.*)\\r$`, 'm').exec(info)?.[1] ?? '';
      const dbsize = await socket.call('DBSIZE') as number;
      assert.ok(dbsize > 5000, `DBSIZE ${dbsize}`);
      // expires counts keys with a TTL (earlier tests set some with SET EX); the node's STATS says how many.
      const expiring = (await kv.stats())['expiring_keys'] as number;
      assert.equal(field('db0'), `keys=${dbsize},expires=${expiring},avg_ttl=0`);
      assert.ok(Number(field('connected_clients')) >= 2, 'this socket and the WebSocket client');
      assert.ok(Number(field('used_memory')) > 0);
      assert.equal(field('loading'), '0', 'ioredis waits while loading is not 0');
      assert.equal(Number(field('tcp_port')), port);
      assert.ok(Number(field('total_commands_processed')) > 5000);
      const server_only = text(await socket.call('INFO', 'server'));
      assert.match(server_only, /^# Server\r\n/);
      assert.doesNotMatch(server_only, /# Keyspace/);
      assert.equal(text(await socket.call('INFO', 'nosuchsection')), '');
    });
  });

  it('COMMAND, COMMAND DOCS, COMMAND COUNT and COMMAND INFO describe the served commands', async () => {
    await withSocket(port, async (socket) => {
      const count = await socket.call('COMMAND', 'COUNT');
      const all = await socket.call('COMMAND') as RespValue[];
      assert.equal(all.length, count);
      const get = all.find((entry) => text((entry as RespValue[])[0]!) === 'get') as RespValue[];
      assert.deepEqual(get.slice(0, 6).map((v) => (Array.isArray(v) ? v : text(v))), ['get', '2', ['readonly', 'fast'], '1', '1', '1']);
      const docs = pairs(await socket.call('COMMAND', 'DOCS'));
      assert.equal(docs.size, count);
      const set_docs = pairs(docs.get('set')!);
      assert.equal(text(set_docs.get('group')!), 'string');
      const args = (set_docs.get('arguments') as RespValue[]).map((arg) => text(pairs(arg).get('name')!));
      assert.deepEqual(args, ['key', 'value', 'condition', 'get', 'expiration']);
      const only = pairs(await socket.call('COMMAND', 'DOCS', 'get', 'nosuch'));
      assert.deepEqual([...only.keys()], ['get']);
      const info = await socket.call('COMMAND', 'INFO', 'mget', 'nosuch') as RespValue[];
      assert.equal(text((info[0] as RespValue[])[0]!), 'mget');
      assert.equal(info[1], null);
    });
  });

  it('HELLO 2, HELLO 3, CLIENT SETNAME/GETNAME/SETINFO, CONFIG GET and QUIT', async () => {
    await withSocket(port, async (socket) => {
      const hello = pairs(await socket.call('HELLO', '2', 'SETNAME', 'hello-name'));
      assert.equal(text(hello.get('proto')!), '2');
      assert.equal(text(hello.get('version')!), '7.0.0');
      assert.match(errorText(await socket.call('HELLO', '3')), /^NOPROTO/);
      assert.equal(text(await socket.call('CLIENT', 'GETNAME')), 'hello-name');
      assert.equal(text(await socket.call('CLIENT', 'SETNAME', 'renamed')), 'OK');
      assert.equal(text(await socket.call('CLIENT', 'GETNAME')), 'renamed');
      assert.match(errorText(await socket.call('CLIENT', 'SETNAME', 'has space')), /cannot contain spaces/);
      assert.equal(text(await socket.call('CLIENT', 'SETINFO', 'LIB-NAME', 'test')), 'OK');
      assert.equal(typeof await socket.call('CLIENT', 'ID'), 'number');
      assert.match(errorText(await socket.call('CLIENT', 'KILL', 'x')), /^ERR unknown subcommand 'KILL'/);
      const config = pairs(await socket.call('CONFIG', 'GET', 'save', 'append*', 'nosuch'));
      assert.deepEqual([...config.entries()].map(([k, v]) => [k, text(v)]), [['save', ''], ['appendonly', 'no'], ['appendfsync', 'everysec']]);
      assert.deepEqual(await socket.call('CONFIG', 'GET', 'nosuch'), []);
      assert.match(errorText(await socket.call('CONFIG', 'SET', 'maxmemory', '1')), /CONFIG SET is not supported/);
      socket.send('PING\r\nQUIT\r\nPING\r\n');
      assert.equal(text(await socket.reply()), 'PONG');
      assert.equal(text(await socket.reply()), 'OK');
      assert.equal(await socket.waitClosed(), '', 'nothing is answered after QUIT');
    });
  });

  it('understands inline commands with quotes, as telnet users send them', async () => {
    await withSocket(port, async (socket) => {
      socket.send('SET "inline key" "a\\x41\\n"\r\n\r\nGET \'inline key\'\nEXISTS "inline key" other\r\n');
      assert.equal(text(await socket.reply()), 'OK');
      assert.equal(text(await socket.reply()), 'aA\n');
      assert.equal(await socket.reply(), 1);
    });
  });

  it('answers OUT_OF_MEMORY as an OOM error while reads keep working', async () => {
    const small = await startServer(['--workers', '1', '--max-memory', '2mb', '--resp-port', '0']);
    try {
      await withSocket(small.resp_port!, async (socket) => {
        const value = Buffer.alloc(64 * 1024, 7);
        let reply: RespValue = 'OK';
        let stored = 0;
        for (; stored < 200 && reply === 'OK'; stored++) reply = await socket.call('SET', `big:${stored}`, value);
        assert.match(errorText(reply), /^OOM OUT_OF_MEMORY /);
        assert.deepEqual(await socket.call('GET', 'big:0'), value);
        assert.equal(await socket.call('DEL', 'big:0'), 1);
      });
    } finally {
      assert.equal(await small.stop(), 0, small.output());
    }
  });
});

describe('RESP AUTH with the node\'s client token', { timeout: 60_000 }, () => {
  let server: ServerProcess;
  const token = 'resp-test-token';

  before(async () => {
    server = await startServer(['--workers', '1', '--resp-port', '0'], { PIKV_CLIENT_TOKEN: token });
  });
  after(async () => {
    assert.equal(await server?.stop(), 0, 'server exits 0 on SIGTERM');
  });

  it('answers NOAUTH before AUTH, WRONGPASS for a wrong token, and serves after AUTH', async () => {
    await withSocket(server.resp_port!, async (socket) => {
      assert.equal(errorText(await socket.call('GET', 'k')), 'NOAUTH Authentication required.');
      assert.equal(errorText(await socket.call('PING')), 'NOAUTH Authentication required.');
      assert.match(errorText(await socket.call('AUTH', 'wrong')), /^WRONGPASS/);
      assert.match(errorText(await socket.call('AUTH', 'someone', token)), /^WRONGPASS/);
      assert.match(errorText(await socket.call('HELLO', '2')), /^NOAUTH/);
      assert.equal(text(await socket.call('AUTH', token)), 'OK');
      assert.equal(text(await socket.call('SET', 'auth:k', 'v')), 'OK');
    });
    await withSocket(server.resp_port!, async (socket) => {
      const hello = pairs(await socket.call('HELLO', '2', 'AUTH', 'default', token));
      assert.equal(text(hello.get('proto')!), '2');
      assert.equal(text(await socket.call('GET', 'auth:k')), 'v');
    });
  });

  it('holds a client that has not authenticated to small commands, as Redis does', async () => {
    await withSocket(server.resp_port!, async (socket) => {
      socket.send('*11\r\n');
      assert.equal(errorText(await socket.reply()), 'ERR Protocol error: unauthenticated multibulk length');
      await socket.waitClosed();
    });
    await withSocket(server.resp_port!, async (socket) => {
      socket.send('*2\r\n$3\r\nGET\r\n$20000\r\n');
      assert.equal(errorText(await socket.reply()), 'ERR Protocol error: unauthenticated bulk length');
      await socket.waitClosed();
    });
  });

  it('works with redis-cli -a and ioredis given the password', async (t) => {
    if (REDIS_CLI === null) t.diagnostic('redis-cli is not installed; only ioredis is checked');
    else {
      const result = await runTool(REDIS_CLI, ['-p', String(server.resp_port), '--no-auth-warning', '-a', token, 'get', 'auth:k']);
      assert.equal(result.stdout.trim(), 'v', result.stderr);
    }
    const redis = new Redis({ port: server.resp_port!, host: '127.0.0.1', password: token, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      assert.equal(await redis.get('auth:k'), 'v');
    } finally {
      redis.disconnect();
    }
  });
});

describe('--resp-port', { timeout: 60_000 }, () => {
  /** Listens on a free loopback port (or `port`), to make it taken; null if it cannot. */
  function occupy(port = 0): Promise<Server | null> {
    return new Promise((resolve) => {
      const blocker = createServer();
      blocker.once('error', () => resolve(null));
      blocker.listen(port, '127.0.0.1', () => resolve(blocker));
    });
  }

  it('stops start-up when an explicitly given port is taken (exit 2, naming the flag)', async () => {
    const blocker = (await occupy())!;
    try {
      const taken = (blocker.address() as { port: number }).port;
      const result = await runCli(['serve', '--host', '127.0.0.1', '--port', '0', '--resp-port', String(taken), '--workers', '1', '--max-memory', '64mb']);
      assert.equal(result.code, 2, result.stdout + result.stderr);
      assert.match(result.stderr, new RegExp(`cannot listen for RESP on 127\\.0\\.0\\.1:${taken} \\(--resp-port\\)`));
      assert.doesNotMatch(result.stdout, /listening on/);
    } finally {
      blocker.close();
    }
  });

  it('serves without RESP, with one log line, when the default port 6379 is taken', async () => {
    // Take 6379 ourselves if it is free; if something else holds it, that does as well.
    const blocker = await occupy(6379);
    try {
      const { spawn } = await import('node:child_process');
      const child = spawn(process.execPath, [CLI_PATH, 'serve', '--host', '127.0.0.1', '--port', '0', '--workers', '1', '--max-memory', '64mb'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const deadline_ms = Date.now() + 15_000;
      while (!/listening on ws:/.test(output) && Date.now() < deadline_ms && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 50));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid!, 'SIGTERM');
      await exited;
      assert.match(output, /listening on ws:/, output);
      assert.equal(output.match(/RESP port 6379 on 127\.0\.0\.1 is in use/g)?.length, 1, output);
      assert.doesNotMatch(output, /redis:\/\//);
    } finally {
      blocker?.close();
    }
  });

  it('off: no listener, and serve says so', async () => {
    const server = await startServer(['--workers', '1']);
    try {
      assert.equal(server.resp_port, null);
      assert.match(server.output(), /RESP \(Redis protocol\) is off/);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  it('refuses a value that is not a port or off', async () => {
    for (const bad of ['70000', 'six', '-1']) {
      const result = await runCli(['serve', '--port', '0', '--resp-port', bad]);
      assert.equal(result.code, 2, `--resp-port ${bad}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, /resp[-_]port/);
    }
  });
});
