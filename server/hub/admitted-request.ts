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
  /**
   * Wants every class's probability (the Open Inference Protocol's FP32 output): the job runs
   * where they can be computed (a local worker), and they are handed here before the reply.
   */
  onAllClasses?: (probabilities: Float32Array) => void;
}
