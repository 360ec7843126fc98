/**
 * Where a slide is read from, as plain data: a DICOMweb series or a local folder. Shared by the
 * pipeline (which opens it), the results (which record it) and the queue (which carries it).
 * Tokens are supplied separately at run time and never stored in a spec.
 */
export type SlideSourceSpec =
  | {
      readonly kind: 'dicomweb';
      readonly baseUrl: string;
      readonly studyUid: string;
      readonly seriesUid: string;
      readonly instanceUids?: readonly string[];
    }
  | { readonly kind: 'local'; readonly folder: string };
