/**
 * The pikv package: the client library, plus what a client in another language or a
 * benchmark needs to speak the protocol directly.
 */
export { connect, PikvClient, type ClientOptions, type ColumnBatch, type ColumnResults, type PutOptions } from './client/client.js';
export type { BatchOp, Bytes, OpResult } from './client/ops.js';
export { connectCluster, PikvClusterClient, type ClusterClientOptions } from './client/cluster-client.js';
export { HashRing, type RingNode } from './routing/ring.js';
export type { ClusterView } from './routing/view.js';
export { ErrorCode, PikvError, RETRYABLE_CODES, type ErrorCodeName } from './protocol/errors.js';
export { Op, Status, PROTOCOL_VERSION } from './protocol/constants.js';
export { WireCodec, type RequestBatch, type ResponseBatch, type ErrorResponse } from './protocol/codec.js';
export { KEY_HASH_SEED, murmur3_x86_32, partitionOf } from './routing/murmur3.js';
