/**
 * One RESP client's TCP socket: reads commands, feeds them to the same Dispatcher as the
 * WebSocket path, and writes the replies in order.
 *
 * Pipelining becomes batching: every command one socket read holds becomes one RequestBatch
 * (read-group.ts), submitted once, and its replies go out in one write when it is answered.
 * Reads are answered in order: a group whose batch finished early waits for the groups before
 * it. Commands that need no engine op (PING, INFO, ...) are answered in the same write.
 *
 * Limits are the WebSocket path's, through the same RequestBudget: the socket is not read while
 * the connection has connection_requests_inflight_max unanswered reads, or too many response
 * bytes on their way, or while the node is over node_inflight_bytes_max; a client that leaves
 * more than connection_send_bytes_max unread for slow_client_timeout_ms is closed, as is one
 * holding part of a command for frame_timeout_ms or idle for idle_timeout_ms. When the socket
 * goes, its requests are cancelled and its share of the node's budgets released at once.
 *
 * Malformed input gets `-ERR Protocol error: ...` after the replies before it, then the
 * connection closes (parser.ts). A client that half-closes (nc, a script) still gets its
 * replies: the socket is ended once they are written.
 */
import type { Socket } from 'node:net';
import type { Dispatcher } from '../dispatcher.js';
import type { ServerConfig } from '../config.js';
import type { PendingRequest } from '../../engine/pending-request.js';
import { RequestBudget, type BudgetHost, type ServedConnection } from '../request-budget.js';
import { RespParser, RespProtocolError } from './parser.js';
import { ReadGroup } from './read-group.js';
import { renderGroup, type RenderSource } from './render.js';
import { encodeReply, ReplyWriter } from './reply-writer.js';
import { RespSession, type SessionHost } from './session.js';

/** What a RESP connection needs from its listener and node. */
export interface RespConnectionHost extends BudgetHost, SessionHost, RenderSource {
  readonly config: ServerConfig;
  readonly dispatcher: Dispatcher;
  onPaused(connection: ServedConnection): void;
  onClosed(connection: RespConnection): void;
  log(message: string): void;
  /** Logs, but at most a few lines a second across all connections: hostile clients must not flood the log. */
  logLimited(message: string): void;
}

/** A closed connection whose replies have not drained by then is torn down. */
const CLOSE_GRACE_MS = 1_000;
/** Socket errors that only mean the client went away. */
const QUIET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);
/** Redis's args cap (1024 * 1024), lowered to what one request can carry: MSET of batch_ops_max pairs. */
const argsMax = (config: ServerConfig): number => Math.min(1024 * 1024, 2 * config.batch_ops_max + 1);

export class RespConnection implements ServedConnection {
  readonly protocol = 'resp';
  readonly address: string;
  private readonly socket: Socket;
  private readonly host: RespConnectionHost;
  private readonly parser: RespParser;
  private readonly session: RespSession;
  private readonly budget: RequestBudget;
  /** Reads not yet answered, oldest first; their replies go out in this order. */
  private readonly groups: ReadGroup[] = [];
  private readonly writer = new ReplyWriter();
  private gone = false;
  /** No more commands are read (QUIT, a protocol error, the client's end of input); replies still go out. */
  private reading_stopped = false;
  /** The client half-closed its side: end ours once every reply is written. */
  private input_ended = false;
  /** Our side is ending (endSoon): nothing more is written. */
  private ending = false;
  private paused = false;
  /**
   * Whole commands still in the parser: the last group stopped taking commands once its local
   * replies reached connection_send_bytes_max. They run when the connection may be read again.
   */
  private commands_waiting = false;
  /** Inside onData: answers that arrive meanwhile are written at the end of the read, together. */
  private in_read = false;
  private last_activity_ms = Date.now();
  /** When the command held partly began to be held; 0 while none is. */
  private partial_since_ms = 0;
  private next_batch_id = 1;

  constructor(socket: Socket, host: RespConnectionHost) {
    this.socket = socket;
    this.host = host;
    this.address = socket.remoteAddress ?? '?';
    const { config } = host;
    this.parser = new RespParser({ bulk_bytes_max: config.value_bytes_max, args_max: argsMax(config), command_bytes_max: config.frame_bytes_max });
    this.session = new RespSession(host);
    this.parser.authenticated = this.session.authenticated;
    this.budget = new RequestBudget(host, {
      requests_inflight_max: config.connection_requests_inflight_max,
      send_bytes_max: config.connection_send_bytes_max,
      value_bytes_max: config.value_bytes_max,
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onInputEnd());
    socket.on('drain', () => this.maybeResume());
    socket.on('error', (error: Error & { code?: string }) => {
      if (!QUIET_ERRORS.has(error.code ?? '')) host.logLimited(`RESP connection error from ${this.address}: ${error.code ?? ''} ${error.message}`);
    });
    socket.on('close', () => this.onGone());
  }

  get requests_inflight(): number {
    return this.budget.requests_inflight;
  }

  get is_paused(): boolean {
    return this.paused;
  }

  private onData(chunk: Buffer): void {
    if (this.gone || this.reading_stopped) return;
    this.last_activity_ms = Date.now();
    this.parser.push(chunk);
    this.runCommands();
  }

  /** Runs the whole commands the parser holds as one group: one batch, one write. */
  private runCommands(): void {
    this.commands_waiting = false;
    const group = new ReadGroup(this.host.config.batch_ops_max);
    this.in_read = true;
    try {
      this.readCommands(group);
      if (group.drop) {
        this.host.logLimited(`closing a RESP connection from ${this.address}: it sent an HTTP request (POST or Host:), as a web page tricked into posting here would`);
        this.abort();
        return;
      }
      if (group.close_after) this.stopReading();
      this.partial_since_ms = !this.parser.holds_partial ? 0 : this.partial_since_ms === 0 ? this.last_activity_ms : this.partial_since_ms;
      if (group.plans.length > 0) this.submit(group);
    } finally {
      this.in_read = false;
    }
    this.flush();
    if (!this.commands_waiting) {
      this.pauseIfNeeded();
      return;
    }
    // The rest waits until these replies are on their way; other connections run meanwhile.
    this.pause();
    setImmediate(() => this.maybeResume());
  }

  /** Runs every whole command the parser holds into `group`, up to QUIT, an HTTP line or a protocol error. */
  private readCommands(group: ReadGroup): void {
    for (;;) {
      let args: Buffer[] | null;
      try {
        args = this.parser.next();
      } catch (error) {
        if (!(error instanceof RespProtocolError)) throw error;
        this.host.logLimited(`closing a RESP connection from ${this.address}: protocol error: ${error.message}`);
        group.fixed(encodeReply((w) => w.error(`ERR Protocol error: ${error.message}`)));
        group.close_after = true;
        return;
      }
      if (args === null) return;
      this.session.run(args, group);
      this.parser.authenticated = this.session.authenticated;
      if (group.close_after || group.drop) return;
      if (group.local_reply_bytes >= this.budget.send_bytes_max) {
        this.commands_waiting = true;
        return;
      }
    }
  }

  /** Submits the group's batches to the dispatcher; a group without ops is ready at once. */
  private submit(group: ReadGroup): void {
    this.groups.push(group);
    group.unsettled = group.batch_count + group.async_count;
    for (let index = 0; index < group.batch_count; index++) {
      const { batch, bytes, gets } = group.build(index, this.next_batch_id++);
      this.budget.open(bytes);
      let request: PendingRequest;
      try {
        request = this.host.dispatcher.submit(batch, bytes, (answered) => this.onAnswered(group, index, answered));
      } catch (error) {
        // A bug, not bad input (see Connection.handleFrame): keep the node up, drop this client.
        this.host.log(`internal error on a RESP batch from ${this.address}; closing its connection: ${(error as Error).stack ?? String(error)}`);
        this.socket.write(encodeReply((w) => w.error('ERR INTERNAL internal server error; see the server log')));
        this.host.inflight_bytes -= bytes; // counted by open(), never tracked, so cancelAll() would miss it
        this.abort();
        return;
      }
      // A batch answered inside submit() (fast path) has already been released by onAnswered().
      this.budget.track(request, gets);
    }
    if (group.async_count > 0) this.startTasks(group);
  }

  /** Runs the group's asynchronous replies (SCAN, DBSIZE in a cluster, ...), after its batches went to the partitions. */
  private startTasks(group: ReadGroup): void {
    for (const plan of group.plans) {
      if (plan.task === undefined) continue;
      const task = plan.task;
      plan.task = undefined;
      task().catch((error: unknown) => {
        this.host.log(`internal error in a RESP reply for ${this.address}: ${(error as Error).stack ?? String(error)}`);
        return encodeReply((w) => w.error('ERR INTERNAL internal server error; see the server log'));
      }).then((reply) => {
        plan.fixed = reply;
        group.unsettled--;
        if (!this.in_read) this.flush();
      });
    }
  }

  private onAnswered(group: ReadGroup, index: number, request: PendingRequest): void {
    // A cancelled request's share was released when the socket went; its answers go nowhere.
    if (!this.budget.finish(request)) return;
    group.requests[index] = request;
    group.unsettled--;
    if (!this.in_read) this.flush();
    this.host.onRequestDone();
  }

  /** Writes the replies of every answered group at the head of the queue, in one write. */
  private flush(): void {
    if (this.gone || this.ending) return;
    let close = false;
    while (this.groups.length > 0 && this.groups[0]!.unsettled === 0) {
      const group = this.groups.shift()!;
      renderGroup(group, this.host, this.writer);
      if (group.close_after) {
        close = true;
        this.groups.length = 0;
      }
    }
    if (this.writer.byte_length > 0) this.socket.write(this.writer.take());
    if (close || (this.input_ended && this.groups.length === 0)) this.endSoon();
  }

  /** The client will send nothing more; reply to what it sent, then close. */
  private onInputEnd(): void {
    this.input_ended = true;
    this.stopReading();
    if (this.groups.length === 0) this.endSoon();
  }

  private stopReading(): void {
    this.reading_stopped = true;
  }

  /** Ends our side once written replies drain; tears the socket down if they do not within the grace. */
  private endSoon(): void {
    if (this.gone || this.ending) return;
    this.ending = true;
    this.stopReading();
    this.socket.end();
    const socket = this.socket;
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  private mustPause(): boolean {
    return this.groups.length >= this.budget.requests_inflight_max || this.budget.mustPause(this.socket.writableLength);
  }

  private pauseIfNeeded(): void {
    if (!this.mustPause()) return;
    this.pause();
  }

  private pause(): void {
    if (this.paused || this.gone || this.reading_stopped) return;
    this.paused = true;
    this.socket.pause();
    this.host.onPaused(this);
  }

  maybeResume(): void {
    if (this.gone || !this.paused || this.mustPause()) return;
    this.paused = false;
    // Commands already read come before anything new from the socket.
    if (this.commands_waiting) {
      this.runCommands();
      if (this.paused || this.gone || this.reading_stopped) return;
    }
    this.socket.resume();
  }

  checkTimers(now_ms: number): void {
    if (this.gone) return;
    const config = this.host.config;
    if (this.budget.isSlow(this.socket.writableLength, now_ms, config.response_bytes_max, config.slow_client_timeout_ms)) {
      this.closeFor('SLOW_CLIENT', `its unread replies stayed over ${this.budget.send_bytes_max} bytes for ${config.slow_client_timeout_ms} ms`);
      return;
    }
    // A paused socket is not read, so a partial command there is our doing, not the client's.
    if (this.partial_since_ms !== 0 && !this.paused && now_ms - this.partial_since_ms >= config.frame_timeout_ms) {
      this.closeFor('FRAME_TIMEOUT', `it held part of a command for ${config.frame_timeout_ms} ms`);
      return;
    }
    if (config.idle_timeout_ms > 0 && this.groups.length === 0 && now_ms - this.last_activity_ms >= config.idle_timeout_ms) {
      this.closeFor('IDLE', `it was idle for ${config.idle_timeout_ms} ms`);
    }
  }

  /** Closes without a reply, as Redis closes timed-out clients: a reply could be taken for a command's. */
  private closeFor(reason: string, why: string): void {
    this.host.logLimited(`closing a RESP connection from ${this.address} (${reason}): ${why}`);
    this.abort();
  }

  /** Tears the socket down now and releases everything it held. */
  private abort(): void {
    this.socket.destroy();
    this.onGone();
  }

  closeForShutdown(): void {
    this.flush();
    this.endSoon();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** The socket is gone: drop unwritten replies, cancel what is running, release its budgets. */
  private onGone(): void {
    if (this.gone) return;
    this.gone = true;
    this.groups.length = 0;
    this.budget.cancelAll();
    this.host.onClosed(this);
  }
}
