/**
 * Wire-level constants of the pikv protocol (version 1).
 *
 * Every number that travels on the wire is named here, so the codec, the server, the
 * client and docs/PROTOCOL.md agree on one table. Changing a value here is a protocol
 * change: bump PROTOCOL_VERSION and say so in docs/PROTOCOL.md.
 */

export const PROTOCOL_VERSION = 1;

/** Op codes, one byte per op in a request's `op` byte string. */
export const Op = {
  GET: 1,
  PUT: 2,
  DELETE: 3,
  PING: 4,
  STATS: 5,
  /** The cluster view (docs/CLUSTER.md): a CBOR map {epoch, nodes, next?}. Any node, no secret. */
  RING: 6,
  /** This node's view, peer health and data-move progress as a CBOR map. Any node, no secret. */
  CLUSTER_STATUS: 7,
  /** Peer-only (cluster secret): liveness and epoch. Key: CBOR {from, epoch}; value: CBOR {epoch}. */
  CLUSTER_HEARTBEAT: 8,
  /** Peer-only: a newer view, adopted if its epoch is higher. Key: the CBOR view. */
  CLUSTER_VIEW: 9,
  /** Peer-only (admin): a membership change. Key: CBOR {action: join|leave|remove, node?|id?}. */
  CLUSTER_ADMIN: 10,
  /** Peer-only: "my ranges for the transition at this epoch are handed off". Key: CBOR {from, epoch}. */
  CLUSTER_DRAINED: 11,
  /**
   * Sets the key's expiry to the op's `xp` (absolute ms since the Unix epoch; a time not in the
   * future deletes the key, as Redis's EXPIRE does). OK, or NOT_FOUND if there is no such key.
   */
  EXPIRE: 12,
  /** Removes the key's expiry. OK if one was removed; NOT_FOUND if there is no such key or it had none. */
  PERSIST: 13,
  /**
   * Reads the key's time to live: OK with an 8-byte value (float64 little-endian, remaining ms,
   * >= 0), OK with an empty value when the key has no expiry, NOT_FOUND when there is no key.
   */
  TTL: 14,
  /**
   * Internal, never accepted from a client (UNKNOWN_OP): a cluster primary's expiry of a key its
   * worker found expired. Deletes the key only if its expiry has passed when the op is applied
   * (OK), else changes nothing (NOT_FOUND); replicated as a DELETE (docs/REPLICATION.md, "Expiry").
   */
  DELETE_EXPIRED: 15,
  /*
   * Conditional and read-and-write ops (Redis's SET NX/XX/GET, SETNX, GETSET, GETDEL, GETEX),
   * atomic per key: the key's partition worker decides and writes in one step. Each answers as a
   * GET of the key's value BEFORE the op would: OK if the key existed, NOT_FOUND if not; ops
   * ending in _GET (and GET_DELETE, GET_EXPIRE) carry that old value, the others no value. The
   * write follows from it (docs/PROTOCOL.md, "Conditional ops"). Replicated and logged as the
   * plain PUT, DELETE, EXPIRE or PERSIST they turned into, or as nothing.
   */
  /** PUT only if the key does not exist (NOT_FOUND: written; OK: not written). */
  PUT_NX: 16,
  /** PUT only if the key exists (OK: written; NOT_FOUND: not written). */
  PUT_XX: 17,
  /** PUT_NX, answering the old value. */
  PUT_NX_GET: 18,
  /** PUT_XX, answering the old value. */
  PUT_XX_GET: 19,
  /** PUT always, answering the old value (GETSET). */
  PUT_GET: 20,
  /** Reads then deletes the key (GETDEL). */
  GET_DELETE: 21,
  /** Reads the key and sets its expiry to `xp` (0: removes it; a past time deletes the key). GETEX. */
  GET_EXPIRE: 22,
  /**
   * Lists keys in bounded steps (RESP SCAN, DBSIZE and FLUSHALL in a cluster). Not keyed: the
   * op's key is a scan request and its value the page (docs/PROTOCOL.md, "SCAN"; key-scan-codec.ts).
   */
  SCAN: 23,
  /** Test hook: terminates a partition worker. Refused unless the server runs with PIKV_TEST_HOOKS=1. */
  DEBUG_KILL_WORKER: 240,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

/**
 * Per-op status bytes in a response's `st` byte string. 0 and 1 are normal outcomes; the
 * rest are errors whose names are the stable codes in errors.ts.
 */
export const Status = {
  OK: 0,
  NOT_FOUND: 1,
  KEY_TOO_LARGE: 10,
  VALUE_TOO_LARGE: 11,
  OUT_OF_MEMORY: 12,
  UNKNOWN_OP: 13,
  WORKER_RESTARTED: 14,
  SHUTTING_DOWN: 15,
  INTERNAL: 16,
  BAD_OP: 17,
  RESPONSE_TOO_LARGE: 18,
  /** With --data-dir: the write could not be logged (disk full or failing) and was not applied. */
  DISK_ERROR: 19,
  /** Ring-aware request (or a forward) for a key this node does not own in its view: refresh the ring and resend. */
  STALE_RING: 20,
  /** The key's owner is not reachable (missed heartbeats, or no answer within the forward timeout). */
  NODE_DOWN: 21,
  /** A cluster op without the cluster secret. */
  AUTH_FAILED: 22,
  /** A membership change while another one is still moving data. */
  CLUSTER_BUSY: 23,
  /** Cluster mode: this node does not hold the current view from etcd (starting, or its etcd session is lost). */
  CLUSTER_UNAVAILABLE: 24,
  /** A write to a slot with fewer copies up than the view's min_replicas (docs/REPLICATION.md); or, after the write, its copies fell below it. */
  NOT_ENOUGH_REPLICAS: 27,
  /** The op's expiry (`xp`/`tl`) is not a valid time, or an op that takes none was given one. */
  BAD_EXPIRY: 25,
  /** This node's clock is not known to be synchronised, so it refuses ops whose meaning depends on the time (docs/PROTOCOL.md, "Expiry"). */
  CLOCK_UNSYNCED: 26,
  /**
   * A GET whose stored value is compressed (value codec id, docs/PROTOCOL.md "Value
   * compression") and does not decode: a failed checksum, or more than value_bytes_max once
   * decoded. Sent by a node decompressing for a client that did not announce the codec.
   */
  VALUE_CORRUPT: 28,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

/** Field names of request and response maps. Short because they are sent in every frame. */
export const Field = {
  VERSION: 'v',
  ID: 'id',
  OP: 'op',
  KEY_LENGTHS: 'kl',
  VALUE_LENGTHS: 'vl',
  KEYS: 'keys',
  VALUES: 'vals',
  STATUS: 'st',
  ERROR: 'err',
  MESSAGE: 'msg',
  /** Optional request field: the sender's ring epoch; marks a ring-aware (direct) request. */
  RING_EPOCH: 're',
  /** Optional request field, honoured from peers only: ops of a data-move stream, applied here whoever owns them. */
  MIGRATE: 'mg',
  /** Optional request field: GETs may be served by any in-sync copy, not only the primary (docs/REPLICATION.md). */
  READ_ANY: 'ra',
  /**
   * Optional request column (float64 typed array, one per op): absolute expiry in ms since the
   * Unix epoch. 0 = none; -1 on a PUT = keep the key's current expiry (Redis KEEPTTL).
   */
  EXPIRY: 'xp',
  /** Optional request column (float64 typed array, one per op): time to live in ms, turned into `xp` by the receiving node's clock. 0 = none. */
  TTL: 'tl',
  /** Optional request field: version of the per-entry metadata a stream frame (`mg`) carries; STREAM_RECORD_VERSION. */
  STREAM_VERSION: 'sv',
  /**
   * Optional column (byte string, one byte per op): the value codec id of each op's value
   * (value-codec.ts; 0 = raw bytes). In a request: how a PUT's value is encoded (other ops: 0).
   * In a response: how each GET result is encoded, sent only to a request that announced the
   * codec in `ac` and only when some result is not raw.
   */
  VALUE_CODEC: 'vc',
  /**
   * Optional request field (unsigned int): bit c set = the sender decodes value codec c, so GET
   * results stored with codec c come back as stored, with `vc`. Without it every result is
   * plain bytes (the node decompresses).
   */
  ACCEPT_CODECS: 'ac',
  /**
   * Optional field of a replication frame (`mg`, unsigned int): the highest commit id of the
   * sender (as primary) whose writes this frame holds; absent or 0 when it holds none
   * (docs/REPLICATION.md, "Promotion with N ≥ 3").
   */
  COMMIT_ID: 'ci',
  /** Optional field of a replication frame (unsigned int): the sender's commit watermark, every commit up to it applied by every copy. */
  COMMIT_WATERMARK: 'cw',
} as const;

/**
 * Version of the per-entry record a data-move or replication stream frame (`mg`) carries:
 * 1 = key and value only; 2 = key, value and `xp` (absolute expiry) per op; 3 = also `vc`
 * (the value codec id per op, the value bytes as stored). A receiver refuses a frame of a
 * version it does not know (UNSUPPORTED_VERSION) rather than drop metadata.
 */
export const STREAM_RECORD_VERSION = 3;

/** `xp` value on a PUT: keep the key's current expiry. */
export const EXPIRY_KEEP = -1;

/** Largest request id: ids must survive a round trip through a JS number exactly. */
export const REQUEST_ID_MAX = Number.MAX_SAFE_INTEGER;

/** Ops that carry a value to write: PUT and the conditional PUTs (Op.PUT_NX .. Op.PUT_GET). */
export function isPutOp(op: number): boolean {
  return op === Op.PUT || (op >= Op.PUT_NX && op <= Op.PUT_GET);
}

/** The conditional and read-and-write ops (Op.PUT_NX .. Op.GET_EXPIRE), decided by the key's worker. */
export function isConditionalOp(op: number): boolean {
  return op >= Op.PUT_NX && op <= Op.GET_EXPIRE;
}
