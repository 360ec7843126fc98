/**
 * Job results, public API: the versioned JSON result (schema, streamed atomic writer, reader),
 * the DICOM Comprehensive SR of the embeddings (builder, Part 10 encoding, STOW-RS) and the
 * embedding PCA used by the demo's picture.
 */
export {
  decodeEmbedding,
  EMBEDDING_ENCODINGS,
  type EmbeddingEncoding,
  embeddingToBase64,
  embeddingToJsonArray,
  encodeEmbedding,
  float32ToDecimal,
} from './embedding-codec.js';
export {
  CovarianceAccumulator,
  type PrincipalComponents,
  pcaColours,
  principalComponents,
  project,
} from './embedding-pca.js';
export {
  type OverviewImage,
  type OverviewInput,
  type OverviewMask,
  type OverviewPatch,
  renderOverview,
  renderOverviewPng,
} from './overview-image.js';
export {
  RESULT_SCHEMA_VERSION,
  type ResultHeader,
  type ResultModel,
  type ResultParameters,
  type ResultSource,
  type ResultTimings,
  resultDocumentSchema,
  resultJsonSchema,
  type StoredResultDocument,
  type StoredResultPatch,
  type StoredResultSummary,
  TARGET_GRID_COORDINATES,
} from './result-document.js';
export {
  parseResult,
  type ResultDocument,
  type ResultPatch,
  type ResultStream,
  type ResultSummary,
  readResult,
  streamResult,
} from './result-reader.js';
export { fileSink, type ResultSink, streamSink, writeBytesAtomic } from './result-sink.js';
export { publicBaseUrl, resultSource, type SourceIdentity } from './result-source.js';
export {
  type ResultHeaderInput,
  type ResultSummaryInput,
  ResultWriter,
} from './result-writer.js';
export { RunningMean } from './running-mean.js';
export { embeddingComponentCode, PRIVATE_SCHEME } from './sr/codes.js';
export { deviceUidFor, srUidsFor, uidFromName, uuidV5 } from './sr/derived-uids.js';
export { decodePart10, encodePart10 } from './sr/dicom-part10.js';
export {
  type BuiltSr,
  buildEmbeddingSr,
  type EmbeddingSrInput,
  type GridScale,
  patchRegion,
  type SrPatch,
} from './sr/embedding-sr.js';
export { type StoredSr, type StowClient, stowSr, writeSrFile } from './sr/store-sr.js';
export * as srTemplates from './sr/templates.js';
