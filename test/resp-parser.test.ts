/**
 * The RESP2 request parser on its own (src/node/resp/parser.ts): the same commands come out
 * however the bytes are cut into reads, inline commands split as Redis splits them, and every
 * cap is a protocol error.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RespParser, RespProtocolError, splitInlineArgs, parseLength } from '../src/node/resp/parser.js';
import { encodeCommand } from './helpers/resp-socket.js';

const LIMITS = { bulk_bytes_max: 1024 * 1024, args_max: 1000, command_bytes_max: 4 * 1024 * 1024 };

/** Feeds `chunks` and collects every command, as strings (latin1). */
function parseAll(chunks: Buffer[], limits = LIMITS): string[][] {
  const parser = new RespParser(limits);
  const commands: string[][] = [];
  for (const chunk of chunks) {
    parser.push(chunk);
    for (let args = parser.next(); args !== null; args = parser.next()) commands.push(args.map((arg) => arg.toString('latin1')));
  }
  assert.equal(parser.holds_partial, false, 'nothing left over');
  return commands;
}

function protocolError(input: string | Buffer, limits = LIMITS): string {
  const parser = new RespParser(limits);
  parser.push(typeof input === 'string' ? Buffer.from(input, 'latin1') : input);
  try {
    while (parser.next() !== null);
  } catch (error) {
    assert.ok(error instanceof RespProtocolError, String(error));
    return error.message;
  }
  assert.fail(`no protocol error for ${JSON.stringify(String(input).slice(0, 60))}`);
}

describe('RESP parser', () => {
  const stream = Buffer.concat([
    encodeCommand('SET', 'key', 'value'),
    Buffer.from('PING\r\n'),
    encodeCommand('MSET', 'a', '', '', 'b'),
    Buffer.from('*0\r\n*-1\r\n\r\n'),
    encodeCommand('SET', 'bin', Buffer.from([0, 13, 10, 36, 42, 255])),
    Buffer.from('ECHO "two words"\n'),
  ]);
  const expected = [['SET', 'key', 'value'], ['PING'], ['MSET', 'a', '', '', 'b'], ['SET', 'bin', '\u0000\r\n$*\u00ff'], ['ECHO', 'two words']];

  it('reads the same commands from one chunk, from every two-way split, and byte by byte', () => {
    assert.deepEqual(parseAll([stream]), expected);
    for (let cut = 1; cut < stream.length; cut++) assert.deepEqual(parseAll([stream.subarray(0, cut), stream.subarray(cut)]), expected, `cut at ${cut}`);
    assert.deepEqual(parseAll([...stream].map((byte) => Buffer.from([byte]))), expected);
  });

  it('reads a large bulk string arriving in many chunks, and keeps arguments valid until the next push', () => {
    const value = Buffer.alloc(900_000);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 0xff;
    const bytes = Buffer.concat([encodeCommand('SET', 'big', value), encodeCommand('GET', 'big')]);
    const parser = new RespParser(LIMITS);
    const seen: Buffer[][] = [];
    for (let at = 0; at < bytes.length; at += 65_536) {
      parser.push(bytes.subarray(at, at + 65_536));
      for (let args = parser.next(); args !== null; args = parser.next()) seen.push(args.map((arg) => Buffer.from(arg)));
    }
    assert.equal(seen.length, 2);
    assert.deepEqual(seen[0]![2], value);
    assert.equal(seen[1]![0]!.toString(), 'GET');
  });

  it('splits inline commands as Redis\'s sdssplitargs does', () => {
    const split = (line: string): string[] | null => splitInlineArgs(Buffer.from(line, 'latin1'), 0, line.length)?.map((arg) => arg.toString('latin1')) ?? null;
    assert.deepEqual(split('  SET   a  b '), ['SET', 'a', 'b']);
    assert.deepEqual(split('SET "a b" \'c d\''), ['SET', 'a b', 'c d']);
    assert.deepEqual(split('ECHO "\\x41\\n\\t\\"q\\\\"'), ['ECHO', 'A\n\t"q\\']);
    assert.deepEqual(split("ECHO 'it\\'s'"), ['ECHO', "it's"]);
    assert.deepEqual(split('ECHO a"b'), ['ECHO', 'a"b'], 'a quote inside a word is a plain byte');
    assert.deepEqual(split(''), []);
    assert.equal(split('ECHO "open'), null);
    assert.equal(split('ECHO "closed"x'), null, 'a closing quote must end the argument');
  });

  it('reads lengths as Redis\'s string2ll does', () => {
    const read = (text: string): number => parseLength(Buffer.from(text), 0, text.length);
    assert.equal(read('0'), 0);
    assert.equal(read('123'), 123);
    assert.equal(read('-1'), -1);
    for (const bad of ['', '-', '01', '-0', '+1', '1 ', '1x', '9'.repeat(16)]) assert.ok(Number.isNaN(read(bad)), JSON.stringify(bad));
  });

  it('refuses malformed and over-limit input with Redis\'s messages', () => {
    assert.equal(protocolError('*1\r\n$-1\r\n'), 'invalid bulk length');
    assert.equal(protocolError('*1001\r\n'), 'invalid multibulk length');
    assert.equal(protocolError('*1\r\n*1\r\n'), "expected '$', got '*'");
    assert.equal(protocolError('*1\r\n\u0001'.padEnd(8, 'x') + '\r\n'), "expected '$', got '\\x01'");
    assert.match(protocolError(`*1\r\n$${1024 * 1024 + 1}\r\n`), /^invalid bulk length 1048577 \(VALUE_TOO_LARGE/);
    assert.equal(protocolError('x'.repeat(70_000)), 'too big inline request');
    assert.equal(protocolError(`*${'1'.repeat(70_000)}`), 'too big mbulk count string');
    assert.equal(protocolError('GET "a\r\n'), 'unbalanced quotes in request');
    assert.match(protocolError(Buffer.concat([encodeCommand('MSET', 'a', Buffer.alloc(1024 * 1024)), encodeCommand('SET')]).subarray(0, 100),
      { ...LIMITS, command_bytes_max: 1000 }), /frame_bytes_max = 1000/);
    const parser = new RespParser(LIMITS);
    parser.authenticated = false;
    parser.push(Buffer.from('*11\r\n'));
    assert.throws(() => parser.next(), /unauthenticated multibulk length/);
  });
});
