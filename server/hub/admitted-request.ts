/**
 * A request the hub has accepted to run: a front parsed and checked it (front/admission.ts), so
 * everything from here on can trust its fields.
 */
export interface AdmittedRequest {
  image: Uint8Array;
  top: number;
  requestId?: string;
  deadlineMs?: number;
  offload: boolean;
}
