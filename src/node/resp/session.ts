/**
 * One RESP client's commands: checks names, arity and authentication, keeps the connection's
 * state (AUTH, CLIENT SETNAME), and turns each command into a reply plan and the engine ops
 * it needs (read-group.ts). Nothing here waits: data commands are answered when their batch
 * is, and everything else is answered now.
 *
 * Redis's wording is kept where clients or people match on it (unknown command, wrong number
 * of arguments, NOAUTH, WRONGPASS, NOPROTO). Behaviour and differences: docs/RESP.md.
 */
import { EXPIRY_KEEP, Op } from '../../protocol/constants.js';
import { EXPIRY_MS_MAX } from '../../hashmap/index.js';
import { equalText } from '../../protocol/auth.js';
import { ErrorCode } from '../../protocol/errors.js';
import type { ServerConfig } from '../config.js';
import { arityFits, findCommand, NOT_YET, CONDITIONAL_REASON } from './command-table.js';
import { commandCount, commandDocs, commandInfo, commandInfoAll, commandList } from './command-docs.js';
import { REDIS_VERSION_CLAIMED } from './info.js';
import { parseLength } from './parser.js';
import { ReplyKind, type ReadGroup, type ReplyKindCode } from './read-group.js';
import { encodeReply } from './reply-writer.js';
import { codeErrorText, type ErrorLimits } from './status-errors.js';
import { globMatches } from './glob.js';
import { parseScanCursor } from '../../cluster/key-scan.js';
import type { Keyspace } from '../keyspace.js';
import { PikvError } from '../../protocol/errors.js';

/** What a session needs from the node. */
export interface SessionHost {
  readonly config: ServerConfig;
  /** The node's client token; '' when clients need none. */
  readonly client_token: string;
  readonly shutting_down: boolean;
  readonly error_limits: ErrorLimits;
  /** The port RESP listens on, for CONFIG GET port. */
  readonly resp_port: number;
  /** Counts every command read, for INFO's total_commands_processed. */
  countCommand(): void;
  /** True in a pikv cluster: DBSIZE counts the whole cluster (asynchronously). */
  readonly clustered: boolean;
  /** The whole store's keys: SCAN, KEYS, DBSIZE in a cluster, FLUSHALL. */
  readonly keyspace: Keyspace;
}

/** KEYS lists at most this many keys; past it, it answers an error that points to SCAN. */
export const KEYS_REPLY_MAX = 100_000;
/** SCAN's default COUNT, as Redis's. */
const SCAN_COUNT_DEFAULT = 10;

/** Longest command name looked up; longer ones are unknown anyway, and are not turned into big strings. */
const NAME_BYTES_MAX = 64;
/** Redis quotes at most this much of an unknown command's arguments in its error. */
const QUOTED_ARGS_CHARS_MAX = 128;
/** Commands a client may send before AUTH (Redis's no_auth flag). */
const NO_AUTH = new Set(['auth', 'hello', 'quit']);

const OK = encodeReply((w) => w.simple('OK'));
const PONG = encodeReply((w) => w.simple('PONG'));
const NULL_BULK = encodeReply((w) => w.nullBulk());
const EMPTY_ARRAY = encodeReply((w) => w.arrayHeader(0));
const NOAUTH = encodeReply((w) => w.error('NOAUTH Authentication required.'));
const WRONGPASS = encodeReply((w) => w.error('WRONGPASS invalid username-password pair or user is disabled.'));
const NOPROTO = encodeReply((w) => w.error('NOPROTO sorry, this protocol version is not supported.'));
const SYNTAX_ERROR = encodeReply((w) => w.error('ERR syntax error'));
const NOT_AN_INTEGER = encodeReply((w) => w.error('ERR value is not an integer or out of range'));

/** A signed decimal integer argument as Redis reads one, or NaN. */
function parseInteger(arg: Buffer): number {
  const text = arg.toString('latin1');
  if (!/^-?(0|[1-9][0-9]{0,17})$/.test(text)) return NaN;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : NaN;
}

function errorReply(text: string): Buffer {
  return encodeReply((w) => w.error(text));
}

/** Argument bytes as a JS string, one char per byte (latin1), as error messages quote them. */
function text(arg: Buffer, chars_max = Infinity): string {
  return arg.toString('latin1', 0, Math.min(arg.length, chars_max));
}

function lower(arg: Buffer | undefined): string {
  return arg === undefined ? '' : text(arg, NAME_BYTES_MAX).toLowerCase();
}

/** Redis allows client names of printable ASCII without spaces. */
function validClientName(name: Buffer): boolean {
  for (const byte of name) if (byte < 0x21 || byte > 0x7e) return false;
  return true;
}

let next_client_id = 1;

export class RespSession {
  readonly id = next_client_id++;
  /** True once AUTH (or HELLO ... AUTH) gave the node's token, or from the start when it has none. */
  authenticated: boolean;
  private name: Buffer | null = null;
  private readonly host: SessionHost;

  constructor(host: SessionHost) {
    this.host = host;
    this.authenticated = host.client_token === '';
  }

  /** Adds one command's reply plan (and its ops) to the group. */
  run(args: Buffer[], group: ReadGroup): void {
    this.host.countCommand();
    const name = lower(args[0]);
    // A browser tricked into posting to this port sends HTTP; Redis drops such a client at once
    // (its "Possible SECURITY ATTACK" check), so a web page cannot drive the store.
    if (name === 'post' || name === 'host:') {
      group.drop = true;
      return;
    }
    if (!this.authenticated && !NO_AUTH.has(name)) {
      group.fixed(NOAUTH);
      return;
    }
    const command = findCommand(name);
    if (command === undefined) {
      const why = NOT_YET.get(name);
      group.fixed(errorReply(why !== undefined ? `ERR ${name.toUpperCase()} is not supported yet: ${why}` : unknownCommand(args)));
      return;
    }
    if (!arityFits(command, args.length)) {
      group.fixed(errorReply(`ERR wrong number of arguments for '${command.name}' command`));
      return;
    }
    switch (name) {
      case 'ping':
        if (args.length > 2) return group.fixed(errorReply('ERR wrong number of arguments for \'ping\' command'));
        return group.fixed(args.length === 1 ? PONG : encodeReply((w) => w.bulk(args[1]!)));
      case 'echo': return group.fixed(encodeReply((w) => w.bulk(args[1]!)));
      case 'quit':
        group.fixed(OK);
        group.close_after = true;
        return;
      case 'select': return group.fixed(this.select(args[1]!));
      case 'auth': return group.fixed(this.auth(args));
      case 'hello': return group.fixed(this.hello(args));
      case 'client': return group.fixed(this.client(args));
      case 'command': return group.fixed(this.command(args));
      case 'config': return group.fixed(this.config(args));
      case 'get': return this.data(group, ReplyKind.GET, Op.GET, [args[1]!]);
      case 'set': return this.set(args, group);
      case 'setnx': return this.data(group, ReplyKind.SETNX, Op.PUT_NX, [args[1]!], [args[2]!]);
      case 'getset': return this.data(group, ReplyKind.GET, Op.PUT_GET, [args[1]!], [args[2]!]);
      case 'getdel': return this.data(group, ReplyKind.GET, Op.GET_DELETE, [args[1]!]);
      case 'getex': return this.getex(args, group);
      case 'setex':
      case 'psetex': return this.setex(name, args, group);
      case 'expire':
      case 'pexpire':
      case 'expireat':
      case 'pexpireat': return this.expire(name, args, group);
      case 'ttl': return this.data(group, ReplyKind.TTL_SECONDS, Op.TTL, [args[1]!]);
      case 'pttl': return this.data(group, ReplyKind.TTL_MS, Op.TTL, [args[1]!]);
      case 'persist': return this.data(group, ReplyKind.DELETED, Op.PERSIST, [args[1]!]);
      case 'mget': return this.data(group, ReplyKind.VALUES, Op.GET, args.slice(1));
      case 'exists': return this.data(group, ReplyKind.EXISTING, Op.GET, args.slice(1));
      case 'del':
      case 'unlink': return this.data(group, ReplyKind.DELETED, Op.DELETE, args.slice(1));
      case 'mset': return this.mset(args, group);
      case 'dbsize':
        if (!this.host.clustered) return group.late(ReplyKind.DBSIZE);
        return group.later(() => this.guarded(async () => integerReply(await this.host.keyspace.count())));
      case 'scan': return this.scan(args, group);
      case 'keys': return group.later(() => this.guarded(() => this.keys(text(args[1]!))));
      case 'flushall':
      case 'flushdb': return this.flush(name, args, group);
      case 'info': return group.late(ReplyKind.INFO, args.slice(1).map((arg) => lower(arg)));
      default: return group.fixed(errorReply(unknownCommand(args)));
    }
  }

  /** A command's engine ops, after the checks every data command shares. */
  private data(group: ReadGroup, kind: ReplyKindCode, op: number, keys: Buffer[], values?: Buffer[], expiry_ms = 0): void {
    const { error_limits } = this.host;
    if (keys.length > error_limits.batch_ops_max) {
      group.fixed(errorReply(codeErrorText(ErrorCode.TOO_MANY_OPS, error_limits, `this command has ${keys.length} keys`)));
    } else if (this.host.shutting_down) {
      group.fixed(errorReply(codeErrorText(ErrorCode.SHUTTING_DOWN, error_limits)));
    } else {
      group.ops(kind, op, keys, values, expiry_ms);
    }
  }

  /**
   * SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]. The expiry is made
   * absolute with this node's clock; without one (or KEEPTTL) the key's TTL is cleared, as in
   * Redis. NX, XX and GET become one conditional op (Op.PUT_NX ..), decided by the key's worker
   * in one step; NX with GET is allowed, as in Redis 7.
   */
  private set(args: Buffer[], group: ReadGroup): void {
    let expiry_ms = 0;
    let timed = false;
    let condition: 'NX' | 'XX' | '' = '';
    let get = false;
    for (let i = 3; i < args.length; i++) {
      const option = lower(args[i]).toUpperCase();
      if (option === 'EX' || option === 'PX' || option === 'EXAT' || option === 'PXAT') {
        if (timed || i + 1 >= args.length) return group.fixed(SYNTAX_ERROR);
        timed = true;
        const amount = parseInteger(args[++i]!);
        if (Number.isNaN(amount)) return group.fixed(NOT_AN_INTEGER);
        const absolute = absoluteExpiry(option === 'EX' ? 's' : option === 'PX' ? 'ms' : option === 'EXAT' ? 'at_s' : 'at_ms', amount);
        if (absolute === null || amount <= 0) return group.fixed(errorReply('ERR invalid expire time in \'set\' command'));
        expiry_ms = absolute;
        continue;
      }
      if (option === 'KEEPTTL') {
        if (timed) return group.fixed(SYNTAX_ERROR);
        timed = true;
        expiry_ms = EXPIRY_KEEP;
        continue;
      }
      if (option === 'NX' || option === 'XX') {
        if (condition !== '' && condition !== option) return group.fixed(SYNTAX_ERROR);
        condition = option;
        continue;
      }
      if (option === 'GET') {
        get = true;
        continue;
      }
      return group.fixed(SYNTAX_ERROR);
    }
    const op = condition === 'NX' ? (get ? Op.PUT_NX_GET : Op.PUT_NX) : condition === 'XX' ? (get ? Op.PUT_XX_GET : Op.PUT_XX) : get ? Op.PUT_GET : Op.PUT;
    const kind = get ? ReplyKind.GET : condition === 'NX' ? ReplyKind.SET_IF_ABSENT : condition === 'XX' ? ReplyKind.SET_IF_PRESENT : ReplyKind.OK;
    this.data(group, kind, op, [args[1]!], [args[2]!], expiry_ms);
  }

  /**
   * GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]: the value, and the new expiry set in
   * the same step (Op.GET_EXPIRE). Without an option it is a GET. A time not in the future
   * deletes the key after reading it, as in Redis.
   */
  private getex(args: Buffer[], group: ReadGroup): void {
    if (args.length === 2) return this.data(group, ReplyKind.GET, Op.GET, [args[1]!]);
    const option = lower(args[2]).toUpperCase();
    if (option === 'PERSIST') {
      if (args.length !== 3) return group.fixed(SYNTAX_ERROR);
      return this.data(group, ReplyKind.GET, Op.GET_EXPIRE, [args[1]!], undefined, 0);
    }
    if ((option !== 'EX' && option !== 'PX' && option !== 'EXAT' && option !== 'PXAT') || args.length !== 4) return group.fixed(SYNTAX_ERROR);
    const amount = parseInteger(args[3]!);
    if (Number.isNaN(amount)) return group.fixed(NOT_AN_INTEGER);
    const absolute = absoluteExpiry(option === 'EX' ? 's' : option === 'PX' ? 'ms' : option === 'EXAT' ? 'at_s' : 'at_ms', amount);
    if (absolute === null || amount <= 0) return group.fixed(errorReply('ERR invalid expire time in \'getex\' command'));
    // 1 ms after the epoch at the least: a time already past, so the engine deletes the key.
    this.data(group, ReplyKind.GET, Op.GET_EXPIRE, [args[1]!], undefined, Math.max(1, absolute));
  }

  /**
   * SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]: one page of the whole store's keys
   * (the cluster's, each key once; src/cluster/key-scan.ts). MATCH and TYPE filter the page after
   * it is read, as Redis does, so a page may be empty before the scan ends. Every key is a string.
   */
  private scan(args: Buffer[], group: ReadGroup): void {
    const cursor = parseScanCursor(text(args[1]!, 32));
    if (cursor === null) return group.fixed(errorReply('ERR invalid cursor'));
    let pattern: string | null = null;
    let count = SCAN_COUNT_DEFAULT;
    let type_ok = true;
    for (let i = 2; i < args.length; i++) {
      const option = lower(args[i]).toUpperCase();
      if (i + 1 >= args.length) return group.fixed(SYNTAX_ERROR);
      const value = args[++i]!;
      if (option === 'MATCH') {
        pattern = text(value);
      } else if (option === 'COUNT') {
        count = parseInteger(value);
        if (Number.isNaN(count)) return group.fixed(NOT_AN_INTEGER);
        if (count < 1) return group.fixed(SYNTAX_ERROR);
      } else if (option === 'TYPE') {
        type_ok = lower(value) === 'string';
      } else {
        return group.fixed(SYNTAX_ERROR);
      }
    }
    if (this.host.shutting_down) return group.fixed(errorReply(codeErrorText(ErrorCode.SHUTTING_DOWN, this.host.error_limits)));
    group.later(() => this.guarded(async () => {
      const page = await this.host.keyspace.page(cursor, count);
      const keys = type_ok ? page.keys.filter((key) => pattern === null || globMatches(pattern, latin1(key))) : [];
      return encodeReply((w) => {
        w.arrayHeader(2).bulk(page.cursor).arrayHeader(keys.length);
        for (const key of keys) w.bulk(asBuffer(key));
      });
    }));
  }

  /** KEYS pattern: a whole scan, bounded by KEYS_REPLY_MAX matches. */
  private async keys(pattern: string): Promise<Buffer> {
    const found: Uint8Array[] = [];
    let found_bytes = 0;
    let cursor = 0n;
    do {
      const page = await this.host.keyspace.page(cursor, 1000);
      for (const key of page.keys) {
        if (!globMatches(pattern, latin1(key))) continue;
        found.push(key);
        found_bytes += key.length;
      }
      if (found.length > KEYS_REPLY_MAX || found_bytes > this.host.error_limits.response_bytes_max) {
        return errorReply(`ERR KEYS would list more than ${KEYS_REPLY_MAX} keys or response_bytes_max bytes: use SCAN with MATCH`);
      }
      cursor = BigInt(page.cursor);
    } while (cursor !== 0n);
    return encodeReply((w) => {
      w.arrayHeader(found.length);
      for (const key of found) w.bulk(asBuffer(key));
    });
  }

  /** FLUSHALL / FLUSHDB [ASYNC | SYNC]: only with --allow-flush; deletes every key of the store (the cluster's). */
  private flush(name: string, args: Buffer[], group: ReadGroup): void {
    if (args.length > 2) return group.fixed(SYNTAX_ERROR);
    if (args.length === 2 && !['async', 'sync'].includes(lower(args[1]))) return group.fixed(SYNTAX_ERROR);
    if (!this.host.config.allow_flush) {
      return group.fixed(errorReply(`ERR ${name.toUpperCase()} is disabled on this node: start it with --allow-flush (allow_flush in the config file) to let clients delete every key`));
    }
    group.later(() => this.guarded(async () => {
      await this.host.keyspace.flush();
      return OK;
    }));
  }

  /** A reply made by `make`, or the error reply of the PikvError it threw (NODE_DOWN: -TRYAGAIN ...). */
  private async guarded(make: () => Promise<Buffer>): Promise<Buffer> {
    try {
      return await make();
    } catch (error) {
      if (!(error instanceof PikvError)) throw error;
      return errorReply(codeErrorText(error.code, this.host.error_limits, error.message));
    }
  }

  /** SETEX key seconds value, PSETEX key ms value. */
  private setex(name: string, args: Buffer[], group: ReadGroup): void {
    const amount = parseInteger(args[2]!);
    if (Number.isNaN(amount)) return group.fixed(NOT_AN_INTEGER);
    const absolute = absoluteExpiry(name === 'setex' ? 's' : 'ms', amount);
    if (absolute === null || amount <= 0) return group.fixed(errorReply(`ERR invalid expire time in '${name}' command`));
    this.data(group, ReplyKind.OK, Op.PUT, [args[1]!], [args[3]!], absolute);
  }

  /**
   * EXPIRE/PEXPIRE key amount, EXPIREAT/PEXPIREAT key time: 1 if the key exists, else 0. A time
   * not in the future deletes the key, as in Redis. The NX/XX/GT/LT options answer an error.
   */
  private expire(name: string, args: Buffer[], group: ReadGroup): void {
    if (args.length > 3) {
      const option = lower(args[3]).toUpperCase();
      if (['NX', 'XX', 'GT', 'LT'].includes(option)) return group.fixed(errorReply(`ERR ${name.toUpperCase()} ${option} is not supported yet: ${CONDITIONAL_REASON}`));
      return group.fixed(errorReply(`ERR Unsupported option ${text(args[3]!, NAME_BYTES_MAX)}`));
    }
    const amount = parseInteger(args[2]!);
    if (Number.isNaN(amount)) return group.fixed(NOT_AN_INTEGER);
    const unit = name === 'expire' ? 's' : name === 'pexpire' ? 'ms' : name === 'expireat' ? 'at_s' : 'at_ms';
    const absolute = absoluteExpiry(unit, amount);
    if (absolute === null) return group.fixed(errorReply(`ERR invalid expire time in '${name}' command`));
    // 1 ms after the epoch: a time already past, so the engine deletes the key.
    this.data(group, ReplyKind.DELETED, Op.EXPIRE, [args[1]!], undefined, Math.max(1, absolute));
  }

  private mset(args: Buffer[], group: ReadGroup): void {
    if (args.length % 2 === 0) return group.fixed(errorReply('ERR wrong number of arguments for \'mset\' command'));
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (let i = 1; i < args.length; i += 2) {
      keys.push(args[i]!);
      values.push(args[i + 1]!);
    }
    this.data(group, ReplyKind.OK, Op.PUT, keys, values);
  }

  private select(index: Buffer): Buffer {
    const db = parseLength(index, 0, index.length);
    if (Number.isNaN(db)) return NOT_AN_INTEGER;
    return db === 0 ? OK : errorReply('ERR DB index is out of range (pikv has database 0 only)');
  }

  /** AUTH [username] password: the user is "default", the password the node's client token. */
  private auth(args: Buffer[]): Buffer {
    if (args.length > 3) return SYNTAX_ERROR;
    const user = args.length === 3 ? text(args[1]!) : 'default';
    return this.checkToken(user, args[args.length - 1]!) ?? OK;
  }

  /** Null when user and password are right (the session is then authenticated), else the error reply. */
  private checkToken(user: string, password: Buffer): Buffer | null {
    const token = this.host.client_token;
    if (token === '') {
      return errorReply('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?');
    }
    if (user !== 'default' || !equalText(password.toString('utf8'), token)) return WRONGPASS;
    this.authenticated = true;
    return null;
  }

  /** HELLO [2 [AUTH user pass] [SETNAME name]]: RESP2 only; RESP3 answers NOPROTO so clients fall back. */
  private hello(args: Buffer[]): Buffer {
    if (args.length >= 2) {
      const version = parseLength(args[1]!, 0, args[1]!.length);
      if (Number.isNaN(version)) return errorReply('ERR Protocol version is not an integer or out of range');
      if (version !== 2) return NOPROTO;
      let name: Buffer | null = null;
      for (let i = 2; i < args.length; i++) {
        const option = lower(args[i]);
        if (option === 'auth' && i + 2 < args.length) {
          const refused = this.checkToken(text(args[i + 1]!), args[i + 2]!);
          if (refused !== null) return refused;
          i += 2;
        } else if (option === 'setname' && i + 1 < args.length) {
          name = args[++i]!;
          if (!validClientName(name)) return errorReply('ERR Client names cannot contain spaces, newlines or special characters.');
        } else {
          return errorReply(`ERR Syntax error in HELLO option '${text(args[i]!, NAME_BYTES_MAX)}'`);
        }
      }
      if (!this.authenticated) {
        return errorReply('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time');
      }
      if (name !== null) this.name = Buffer.from(name);
    } else if (!this.authenticated) {
      return NOAUTH;
    }
    return encodeReply((w) => {
      w.arrayHeader(14).bulk('server').bulk('redis').bulk('version').bulk(REDIS_VERSION_CLAIMED).bulk('proto').integer(2)
        .bulk('id').integer(this.id).bulk('mode').bulk('standalone').bulk('role').bulk('master').bulk('modules').arrayHeader(0);
    });
  }

  private client(args: Buffer[]): Buffer {
    const sub = lower(args[1]);
    const command = findCommand('client')!.subcommands!.find((spec) => spec.name === `client|${sub}`);
    if (command === undefined) return errorReply(`ERR unknown subcommand '${text(args[1]!, NAME_BYTES_MAX)}'. Try CLIENT HELP.`);
    if (!arityFits(command, args.length)) return errorReply(`ERR wrong number of arguments for '${command.name}' command`);
    switch (sub) {
      case 'setname':
        if (!validClientName(args[2]!)) return errorReply('ERR Client names cannot contain spaces, newlines or special characters.');
        // An empty name clears it, as in Redis. Copied: the argument is a view of the parser's buffer.
        this.name = args[2]!.length === 0 ? null : Buffer.from(args[2]!);
        return OK;
      case 'getname': return this.name === null ? NULL_BULK : encodeReply((w) => w.bulk(this.name!));
      case 'id': return encodeReply((w) => w.integer(this.id));
      default: {
        // SETINFO: accepted and not kept (it only labels the client in CLIENT LIST, which pikv lacks).
        const attribute = lower(args[2]);
        return attribute === 'lib-name' || attribute === 'lib-ver' ? OK : errorReply(`ERR Unrecognized option '${text(args[2]!, NAME_BYTES_MAX)}'`);
      }
    }
  }

  private command(args: Buffer[]): Buffer {
    if (args.length === 1) return commandInfoAll();
    const sub = lower(args[1]);
    const names = args.slice(2).map((arg) => lower(arg));
    if (sub === 'count' && args.length === 2) return encodeReply((w) => w.integer(commandCount()));
    if (sub === 'docs') return commandDocs(names);
    if (sub === 'info') return names.length === 0 ? commandInfoAll() : commandInfo(names);
    if (sub === 'list' && args.length === 2) return commandList();
    return errorReply(`ERR unknown subcommand or wrong number of arguments for '${text(args[1]!, NAME_BYTES_MAX)}'. Try COMMAND HELP.`);
  }

  /** CONFIG GET answers a few parameters tools ask for (redis-benchmark: save, appendonly); nothing can be set. */
  private config(args: Buffer[]): Buffer {
    const sub = lower(args[1]);
    if (sub !== 'get') {
      if (sub === 'set' || sub === 'resetstat' || sub === 'rewrite') {
        return errorReply(`ERR CONFIG ${sub.toUpperCase()} is not supported: pikv is configured by its flags or config file (pikv serve --help)`);
      }
      return errorReply(`ERR unknown subcommand '${text(args[1]!, NAME_BYTES_MAX)}'. Try CONFIG HELP.`);
    }
    if (args.length < 3) return errorReply('ERR wrong number of arguments for \'config|get\' command');
    const parameters = this.configParameters();
    const found = new Map<string, string>();
    for (const pattern of args.slice(2).map((arg) => lower(arg))) {
      for (const [name, value] of parameters) if (globMatches(pattern, name)) found.set(name, value);
    }
    if (found.size === 0) return EMPTY_ARRAY;
    return encodeReply((w) => {
      w.arrayHeader(found.size * 2);
      for (const [name, value] of found) w.bulk(name).bulk(value);
    });
  }

  private configParameters(): [string, string][] {
    const { config } = this.host;
    return [
      ['save', ''], ['appendonly', config.data_dir === '' ? 'no' : 'yes'], ['appendfsync', config.fsync], ['databases', '1'],
      ['maxmemory', String(config.memory_bytes_max)], ['maxmemory-policy', 'noeviction'], ['maxclients', String(config.connections_max)],
      ['timeout', String(Math.ceil(config.idle_timeout_ms / 1000))], ['proto-max-bulk-len', String(config.value_bytes_max)],
      ['port', String(this.host.resp_port)], ['bind', config.host],
    ];
  }
}

/**
 * An absolute expiry in ms since the epoch from a relative amount (s, ms; counted from this
 * node's clock now) or an absolute one (at_s, at_ms); null when it overflows what the engine
 * stores (Redis: "invalid expire time"). May be in the past.
 */
function absoluteExpiry(unit: 's' | 'ms' | 'at_s' | 'at_ms', amount: number): number | null {
  const ms = unit === 's' || unit === 'at_s' ? amount * 1000 : amount;
  const absolute = unit === 's' || unit === 'ms' ? Date.now() + ms : ms;
  return Number.isSafeInteger(absolute) && absolute <= EXPIRY_MS_MAX ? absolute : null;
}

function integerReply(value: number): Buffer {
  return encodeReply((w) => w.integer(value));
}

/** Key bytes as a latin1 string, one char per byte, as MATCH patterns are read. */
function latin1(key: Uint8Array): string {
  return asBuffer(key).toString('latin1');
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Redis's text for an unknown command: its name and the start of its arguments, quoted. */
function unknownCommand(args: Buffer[]): string {
  let quoted = '';
  for (let i = 1; i < args.length && quoted.length < QUOTED_ARGS_CHARS_MAX; i++) {
    quoted += `'${text(args[i]!, QUOTED_ARGS_CHARS_MAX - quoted.length)}' `;
  }
  return `ERR unknown command '${text(args[0]!, QUOTED_ARGS_CHARS_MAX)}', with args beginning with: ${quoted}`;
}
