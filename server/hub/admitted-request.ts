/**
 * A request the hub has accepted to run: a front parsed and checked it (front/admission.ts), so
 * everything from here on can trust its fields.
 */
export interface AdmittedRequest {
  /** The encoded image file (empty when `tensor` is given). */
  image: Uint8Array;
  /**
   * The image as the model's float input (224×224×3, BGR, means subtracted: shared/caffe.ts),
   * as the Open Inference Protocol's FP32 input sends it: no decoding, and only local workers
   * run it.
   */
  tensor?: Float32Array;
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
