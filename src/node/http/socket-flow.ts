/**
 * Stops and restarts reading an HTTP socket, for the request budget (request-budget.ts).
 *
 * Node's HTTP server reads its sockets itself (its parser consumes the socket's handle) and
 * resumes them on its own: whenever a request body is read or a response finishes, it calls
 * socket.resume() unless its own flag `socket._paused` is set, which it sets when responses
 * pile up. A plain socket.pause() would therefore be undone by the next answer. So this sets
 * that same flag, as Node's flood guard for pipelined requests does; Node then also pauses its
 * parser after the chunk it is parsing, so the requests of one read are the most that can
 * arrive after a pause (HttpConnection holds them, in order). Node internals (v20, lib/
 * _http_server.js: socketOnDrain, parserOnIncoming, onParserExecuteCommon), read and written
 * here only.
 */
import type { Socket } from 'node:net';

interface HttpSocketInternals {
  _paused?: boolean;
  parser?: { pause(): void; resume(): void } | null;
}

export function pauseHttpSocket(socket: Socket): void {
  (socket as Socket & HttpSocketInternals)._paused = true;
  socket.pause();
}

/** Undoes pauseHttpSocket, unless the socket's own writes are backed up (Node resumes it on 'drain' then). */
export function resumeHttpSocket(socket: Socket): void {
  const internals = socket as Socket & HttpSocketInternals;
  if (internals._paused !== true || socket.writableNeedDrain) return;
  internals._paused = false;
  internals.parser?.resume();
  socket.resume();
}

/**
 * Makes the close Node does after a `Connection: close` answer a lingering one: our side is
 * shut (the client reads the answer, then end of stream) but the socket is still read, and
 * what arrives is dropped, for up to `linger_ms`. Closing at once while the client is still
 * sending a body we refused (413 before reading it) resets the connection, and the client
 * (fetch, most libraries) then reports a broken pipe instead of our answer. Node calls
 * socket.destroySoon() when such an answer has been written (lib/_http_server.js resOnFinish).
 */
export function lingerOnClose(socket: Socket, linger_ms: number): void {
  (socket as Socket & { destroySoon: () => void }).destroySoon = () => {
    socket.end();
    resumeHttpSocket(socket);
    const timer = setTimeout(() => socket.destroy(), linger_ms);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  };
}
