/** The part of lcms-wasm (LittleCMS 2 compiled to WebAssembly) pathembed calls; the package ships no types. */
declare module 'lcms-wasm' {
  export interface Lcms {
    cmsOpenProfileFromMem(data: Uint8Array, size: number): number;
    cmsCloseProfile(profile: number): void;
    cmsCreateTransform(
      input: number,
      inputFormat: number,
      output: number,
      outputFormat: number,
      intent: number,
      flags: number,
    ): number;
    cmsDeleteTransform(transform: number): void;
    cmsDoTransform(transform: number, input: Uint8Array, pixels: number): Uint8Array;
    cmsGetProfileInfoASCII(profile: number, info: number, language: string, country: string): string;
  }
  export function instantiate(options?: Record<string, unknown>): Promise<Lcms>;
  export const TYPE_RGB_8: number;
  export const INTENT_PERCEPTUAL: number;
  export const cmsInfoDescription: number;
}
