/**
 * The commands pikv's RESP front end serves, described the way Redis 7 describes its own:
 * arity, flags and key positions for COMMAND / COMMAND INFO, and summary, group and arguments
 * for COMMAND DOCS, which redis-cli 7 reads at start-up for its help and its typing hints.
 *
 * Only what works is listed. The behaviour lives in session.ts; docs/RESP.md has the
 * compatibility table.
 */

/** An argument as COMMAND DOCS describes it (redis-cli builds its hints from these). */
export interface ArgumentDoc {
  name: string;
  type: 'key' | 'string' | 'integer' | 'pattern' | 'pure-token' | 'oneof' | 'block';
  token?: string;
  optional?: boolean;
  multiple?: boolean;
  arguments?: ArgumentDoc[];
}

export interface CommandSpec {
  /** Lower case, as Redis reports names. */
  name: string;
  /** Redis's arity: N means exactly N arguments (the name included), -N at least N. */
  arity: number;
  flags: string[];
  first_key: number;
  last_key: number;
  key_step: number;
  acl_categories: string[];
  summary: string;
  since: string;
  group: string;
  arguments: ArgumentDoc[];
  /** Subcommands (CLIENT SETNAME, ...), named `parent|sub` as Redis names them. */
  subcommands?: CommandSpec[];
}

const key = (name = 'key'): ArgumentDoc => ({ name, type: 'key' });
const keys = (): ArgumentDoc => ({ name: 'key', type: 'key', multiple: true });
const text = (name: string, extra: Partial<ArgumentDoc> = {}): ArgumentDoc => ({ name, type: 'string', ...extra });

function spec(name: string, arity: number, flags: string[], keys_at: [number, number, number], acl: string[], summary: string, since: string, group: string, args: ArgumentDoc[], subcommands?: CommandSpec[]): CommandSpec {
  const command: CommandSpec = {
    name, arity, flags, first_key: keys_at[0], last_key: keys_at[1], key_step: keys_at[2], acl_categories: acl, summary, since, group, arguments: args,
  };
  if (subcommands !== undefined) command.subcommands = subcommands;
  return command;
}

const NO_KEYS: [number, number, number] = [0, 0, 0];

export const COMMANDS: readonly CommandSpec[] = [
  spec('ping', -1, ['fast'], NO_KEYS, ['@fast', '@connection'], 'Returns the server\'s liveliness response.', '1.0.0', 'connection', [text('message', { optional: true })]),
  spec('echo', 2, ['fast'], NO_KEYS, ['@fast', '@connection'], 'Returns the given string.', '1.0.0', 'connection', [text('message')]),
  spec('quit', -1, ['allow_busy', 'noscript', 'loading', 'stale', 'fast', 'no_auth'], NO_KEYS, ['@fast', '@connection'], 'Closes the connection.', '1.0.0', 'connection', []),
  spec('select', 2, ['loading', 'stale', 'fast'], NO_KEYS, ['@fast', '@connection'], 'Changes the selected database (pikv has database 0 only).', '1.0.0', 'connection', [{ name: 'index', type: 'integer' }]),
  spec('auth', -2, ['noscript', 'loading', 'stale', 'fast', 'no_auth'], NO_KEYS, ['@fast', '@connection'], 'Authenticates the connection with the node\'s client token.', '1.0.0', 'connection',
    [text('username', { optional: true }), text('password')]),
  spec('hello', -1, ['noscript', 'loading', 'stale', 'fast', 'no_auth'], NO_KEYS, ['@fast', '@connection'], 'Handshakes with the server (protocol 2 only).', '6.0.0', 'connection',
    [{ name: 'arguments', type: 'block', optional: true, arguments: [{ name: 'protover', type: 'integer' },
      { name: 'auth', type: 'block', token: 'AUTH', optional: true, arguments: [text('username'), text('password')] },
      text('clientname', { token: 'SETNAME', optional: true })] }]),
  spec('client', -2, [], NO_KEYS, ['@slow'], 'A container for client connection commands.', '2.4.0', 'connection', [], [
    spec('client|setname', 3, ['noscript', 'loading', 'stale'], NO_KEYS, ['@slow', '@connection'], 'Sets the connection name.', '2.6.9', 'connection', [text('connection-name')]),
    spec('client|getname', 2, ['noscript', 'loading', 'stale'], NO_KEYS, ['@slow', '@connection'], 'Returns the name of the connection.', '2.6.9', 'connection', []),
    spec('client|setinfo', 4, ['noscript', 'loading', 'stale'], NO_KEYS, ['@slow', '@connection'], 'Accepts the client library\'s name and version (not kept).', '7.2.0', 'connection',
      [{ name: 'attr', type: 'oneof', arguments: [text('libname', { token: 'LIB-NAME' }), text('libver', { token: 'LIB-VER' })] }]),
    spec('client|id', 2, ['noscript', 'loading', 'stale'], NO_KEYS, ['@slow', '@connection'], 'Returns the unique client ID of the connection.', '5.0.0', 'connection', []),
  ]),
  spec('get', 2, ['readonly', 'fast'], [1, 1, 1], ['@read', '@string', '@fast'], 'Returns the string value of a key.', '1.0.0', 'string', [key()]),
  spec('set', -3, ['write', 'denyoom'], [1, 1, 1], ['@write', '@string', '@slow'], 'Sets the string value of a key, ignoring its type. The key is created if it doesn\'t exist.', '1.0.0', 'string',
    [key(), text('value'), { name: 'condition', type: 'oneof', optional: true, arguments: [
      { name: 'nx', type: 'pure-token', token: 'NX' }, { name: 'xx', type: 'pure-token', token: 'XX' }] },
    { name: 'get', type: 'pure-token', token: 'GET', optional: true }, { name: 'expiration', type: 'oneof', optional: true, arguments: [
      { name: 'seconds', type: 'integer', token: 'EX' }, { name: 'milliseconds', type: 'integer', token: 'PX' },
      { name: 'unix-time-seconds', type: 'integer', token: 'EXAT' }, { name: 'unix-time-milliseconds', type: 'integer', token: 'PXAT' },
      { name: 'keepttl', type: 'pure-token', token: 'KEEPTTL' }] }]),
  spec('setnx', 3, ['write', 'denyoom', 'fast'], [1, 1, 1], ['@write', '@string', '@fast'], 'Sets the string value of a key only when the key doesn\'t exist.', '1.0.0', 'string', [key(), text('value')]),
  spec('getset', 3, ['write', 'denyoom', 'fast'], [1, 1, 1], ['@write', '@string', '@fast'], 'Returns the previous string value of a key after setting it to a new value.', '1.0.0', 'string', [key(), text('value')]),
  spec('getdel', 2, ['write', 'fast'], [1, 1, 1], ['@write', '@string', '@fast'], 'Returns the string value of a key after deleting the key.', '6.2.0', 'string', [key()]),
  spec('getex', -2, ['write', 'fast'], [1, 1, 1], ['@write', '@string', '@fast'], 'Returns the string value of a key after setting its expiration time.', '6.2.0', 'string',
    [key(), { name: 'expiration', type: 'oneof', optional: true, arguments: [
      { name: 'seconds', type: 'integer', token: 'EX' }, { name: 'milliseconds', type: 'integer', token: 'PX' },
      { name: 'unix-time-seconds', type: 'integer', token: 'EXAT' }, { name: 'unix-time-milliseconds', type: 'integer', token: 'PXAT' },
      { name: 'persist', type: 'pure-token', token: 'PERSIST' }] }]),
  spec('setex', 4, ['write', 'denyoom'], [1, 1, 1], ['@write', '@string', '@slow'], 'Sets the string value and expiration time (seconds) of a key.', '2.0.0', 'string',
    [key(), { name: 'seconds', type: 'integer' }, text('value')]),
  spec('psetex', 4, ['write', 'denyoom'], [1, 1, 1], ['@write', '@string', '@slow'], 'Sets the string value and expiration time (milliseconds) of a key.', '2.6.0', 'string',
    [key(), { name: 'milliseconds', type: 'integer' }, text('value')]),
  spec('expire', -3, ['write', 'fast'], [1, 1, 1], ['@keyspace', '@write', '@fast'], 'Sets the expiration time of a key in seconds (NX, XX, GT and LT answer an error).', '1.0.0', 'generic',
    [key(), { name: 'seconds', type: 'integer' }]),
  spec('pexpire', -3, ['write', 'fast'], [1, 1, 1], ['@keyspace', '@write', '@fast'], 'Sets the expiration time of a key in milliseconds.', '2.6.0', 'generic',
    [key(), { name: 'milliseconds', type: 'integer' }]),
  spec('expireat', -3, ['write', 'fast'], [1, 1, 1], ['@keyspace', '@write', '@fast'], 'Sets the expiration time of a key to a Unix timestamp (seconds).', '1.2.0', 'generic',
    [key(), { name: 'unix-time-seconds', type: 'integer' }]),
  spec('pexpireat', -3, ['write', 'fast'], [1, 1, 1], ['@keyspace', '@write', '@fast'], 'Sets the expiration time of a key to a Unix timestamp (milliseconds).', '2.6.0', 'generic',
    [key(), { name: 'unix-time-milliseconds', type: 'integer' }]),
  spec('ttl', 2, ['readonly', 'fast'], [1, 1, 1], ['@keyspace', '@read', '@fast'], 'Returns the time to live of a key in seconds (-1: none, -2: no key).', '1.0.0', 'generic', [key()]),
  spec('pttl', 2, ['readonly', 'fast'], [1, 1, 1], ['@keyspace', '@read', '@fast'], 'Returns the time to live of a key in milliseconds (-1: none, -2: no key).', '2.6.0', 'generic', [key()]),
  spec('persist', 2, ['write', 'fast'], [1, 1, 1], ['@keyspace', '@write', '@fast'], 'Removes the expiration time of a key.', '2.2.0', 'generic', [key()]),
  spec('mget', -2, ['readonly', 'fast'], [1, -1, 1], ['@read', '@string', '@fast'], 'Returns the string values of one or more keys (not one snapshot across partitions).', '1.0.0', 'string', [keys()]),
  spec('mset', -3, ['write', 'denyoom'], [1, -1, 2], ['@write', '@string', '@slow'], 'Sets the string values of one or more keys (not atomic in pikv).', '1.0.1', 'string',
    [{ name: 'data', type: 'block', multiple: true, arguments: [key(), text('value')] }]),
  spec('del', -2, ['write'], [1, -1, 1], ['@keyspace', '@write', '@slow'], 'Deletes one or more keys.', '1.0.0', 'generic', [keys()]),
  spec('unlink', -2, ['write', 'fast'], [1, -1, 1], ['@keyspace', '@write', '@fast'], 'Deletes one or more keys (as DEL: pikv frees memory at once).', '4.0.0', 'generic', [keys()]),
  spec('exists', -2, ['readonly', 'fast'], [1, -1, 1], ['@keyspace', '@read', '@fast'], 'Determines whether one or more keys exist.', '1.0.0', 'generic', [keys()]),
  spec('dbsize', 1, ['readonly', 'fast'], NO_KEYS, ['@keyspace', '@read', '@fast'], 'Returns the number of keys in the database (in a pikv cluster: the cluster, each key once).', '1.0.0', 'server', []),
  spec('scan', -2, ['readonly'], NO_KEYS, ['@keyspace', '@read', '@slow'], 'Iterates over the key names in the database (the whole pikv cluster).', '2.8.0', 'generic',
    [{ name: 'cursor', type: 'integer' }, { name: 'pattern', type: 'pattern', token: 'MATCH', optional: true },
      { name: 'count', type: 'integer', token: 'COUNT', optional: true }, text('type', { token: 'TYPE', optional: true })]),
  spec('keys', 2, ['readonly'], NO_KEYS, ['@keyspace', '@read', '@slow', '@dangerous'], 'Returns all key names that match a pattern (at most 100,000).', '1.0.0', 'generic', [{ name: 'pattern', type: 'pattern' }]),
  spec('flushall', -1, ['write'], NO_KEYS, ['@keyspace', '@write', '@slow', '@dangerous'], 'Removes all keys from all databases (only with --allow-flush; the whole pikv cluster).', '1.0.0', 'server',
    [{ name: 'flush-type', type: 'oneof', optional: true, arguments: [{ name: 'async', type: 'pure-token', token: 'ASYNC' }, { name: 'sync', type: 'pure-token', token: 'SYNC' }] }]),
  spec('flushdb', -1, ['write'], NO_KEYS, ['@keyspace', '@write', '@slow', '@dangerous'], 'Remove all keys from the current database (as FLUSHALL: pikv has one).', '1.0.0', 'server',
    [{ name: 'flush-type', type: 'oneof', optional: true, arguments: [{ name: 'async', type: 'pure-token', token: 'ASYNC' }, { name: 'sync', type: 'pure-token', token: 'SYNC' }] }]),
  spec('info', -1, ['loading', 'stale'], NO_KEYS, ['@slow', '@dangerous'], 'Returns information and statistics about the node.', '1.0.0', 'server', [text('section', { optional: true, multiple: true })]),
  spec('config', -2, [], NO_KEYS, ['@slow'], 'A container for server configuration commands.', '2.0.0', 'server', [], [
    spec('config|get', -3, ['admin', 'noscript', 'loading', 'stale'], NO_KEYS, ['@admin', '@slow', '@dangerous'], 'Returns the effective values of a few configuration parameters.', '2.0.0', 'server',
      [{ name: 'parameter', type: 'pattern', multiple: true }]),
  ]),
  spec('command', -1, ['loading', 'stale'], NO_KEYS, ['@slow', '@connection'], 'Returns detailed information about all commands.', '2.8.13', 'server', [], [
    spec('command|count', 2, ['loading', 'stale'], NO_KEYS, ['@slow', '@connection'], 'Returns a count of commands.', '2.8.13', 'server', []),
    spec('command|docs', -2, ['loading', 'stale'], NO_KEYS, ['@slow', '@connection'], 'Returns documentary information about one, multiple or all commands.', '7.0.0', 'server',
      [text('command-name', { optional: true, multiple: true })]),
    spec('command|info', -2, ['loading', 'stale'], NO_KEYS, ['@slow', '@connection'], 'Returns information about one, multiple or all commands.', '2.8.13', 'server',
      [text('command-name', { optional: true, multiple: true })]),
    spec('command|list', -2, ['loading', 'stale'], NO_KEYS, ['@slow', '@connection'], 'Returns a list of command names.', '7.0.0', 'server', []),
  ]),
];

const BY_NAME: ReadonlyMap<string, CommandSpec> = new Map(COMMANDS.map((command) => [command.name, command]));

/** The spec of a served command, by lower-case name. */
export function findCommand(name: string): CommandSpec | undefined {
  return BY_NAME.get(name);
}

/** True when `argc` (the name included) fits the command's arity. */
export function arityFits(command: CommandSpec, argc: number): boolean {
  return command.arity > 0 ? argc === command.arity : argc >= -command.arity;
}

/**
 * Commands pikv knows it does not serve yet, with why; they answer `-ERR NAME is not supported
 * yet: why` instead of "unknown command".
 */
const EXPIRETIME_REASON = 'pikv reports time to live (TTL, PTTL), not the absolute expiry time';
export const CONDITIONAL_REASON = 'pikv\'s engine has no conditional expiry op yet';
export const NOT_YET: ReadonlyMap<string, string> = new Map([
  ['expiretime', EXPIRETIME_REASON], ['pexpiretime', EXPIRETIME_REASON],
  ['msetnx', 'pikv cannot set several keys atomically (they may live on different partitions and nodes)'],
]);
