/**
 * One Open Inference request run through the hub, whichever transport brought it: taken whole
 * or refused whole, one job per image, through the same admission, queue, scheduler and
 * executors as every other request.
 */
import type { ClassifyReply, ErrorReply, Reply } from '../../../shared/protocol/classify.ts';
import { isErrorReply } from '../../../shared/protocol/classify.ts';
import { ServiceError } from '../../../shared/protocol/errors.ts';
import { NUM_CLASSES } from '../../../shared/labels.ts';
import { IMAGE_INPUT, PROBABILITIES_OUTPUT, TENSOR_INPUT } from '../../../shared/protocol/open-inference.ts';
import type { Hub } from '../../hub/hub.ts';
import type { AnsweredInference, ReadInference } from './infer-request.ts';
import { answeredInference, imageCount, wantsAllClasses } from './infer-request.ts';

const NO_FILE = new Uint8Array(0);

export interface RunContext {
  /** When the request arrived (performance.now()): its deadline and timings count from here. */
  receivedAt: number;
  /** The caller's deadline for the whole request, from receivedAt; undefined: the hub's default. */
  deadlineMs?: number;
  /** Local workers run here (not --workers 0): only they compute every class's probability. */
  localWorkers: boolean;
}

/**
 * The answer to every image, or the first image's error (all of a request's images share one
 * fate as far as the client is concerned). Throws a ServiceError for a request refused before
 * any image is queued; the caller answers it through `hub.refusePaced`.
 */
export async function runInference(hub: Hub, read: ReadInference, context: RunContext): Promise<AnsweredInference | ErrorReply> {
  // Taken whole or not at all: a request refused halfway would have spent the cores on images nobody gets.
  const count = imageCount(read);
  if (count > hub.maxQueue) {
    throw new ServiceError('invalid_request', `this hub queues at most ${hub.maxQueue} images (--max-queue); send at most that many in one request`);
  }
  const whole = hub.refusalNow(count);
  if (whole) throw whole;
  if (read.tensors.length > 0 && !context.localWorkers) {
    throw new ServiceError('invalid_request', `this hub has no local workers (--workers 0), and only they take the ${TENSOR_INPUT} input; send the image files as ${IMAGE_INPUT}`);
  }
  const all = wantsAllClasses(read);
  if (all && !context.localWorkers) {
    throw new ServiceError(
      'invalid_request',
      `this hub has no local workers (--workers 0), and only they compute all ${NUM_CLASSES} probabilities; ask for ${PROBABILITIES_OUTPUT} with the classification parameter (top k)`,
    );
  }
  const top = Math.max(1, ...read.outputs.map((output) => output.classification ?? 1));
  const allClasses: Array<Float32Array | undefined> = [];
  // One job per image: an encoded file to decode, or the model's input as sent.
  const inputs = read.tensors.length > 0 ? read.tensors.map((tensor) => ({ image: NO_FILE, tensor })) : read.images.map((image) => ({ image }));
  // A copy each time (a Buffer's slice() would be a view): the hub takes ownership of the file it is given, moved to a decoding thread.
  const classify = (i: number) =>
    hub.classify(
      {
        ...inputs[i],
        image: new Uint8Array(inputs[i].image),
        top,
        requestId: read.id,
        offload: true,
        ...(context.deadlineMs !== undefined ? { deadlineMs: context.deadlineMs } : {}),
        ...(all ? { onAllClasses: (probabilities: Float32Array) => void (allClasses[i] = probabilities) } : {}),
      },
      context.receivedAt,
    );
  let replies = await Promise.all(inputs.map((_, i) => classify(i)));
  // The answer names one model version: images computed by older weights than the others (a swap
  // in the middle of the request) are computed again with the hub's weights now.
  for (let round = 0; round < MAX_RECOMPUTE_ROUNDS && mixedWeights(replies); round++) {
    const current = hub.model.sha256;
    replies = await Promise.all(replies.map((reply, i) => (!isErrorReply(reply) && reply.model.sha256 !== current ? classify(i) : reply)));
  }
  const failed = replies.find(isErrorReply);
  if (failed) return failed;
  if (mixedWeights(replies)) {
    return hub.refuse(new ServiceError('internal', 'the weights changed more than once while this request ran; send it again'), { requestId: read.id });
  }
  return answeredInference(read, replies as ClassifyReply[], allClasses);
}

/** A second swap in the time of one request is rare; a third is not waited for. */
const MAX_RECOMPUTE_ROUNDS = 2;

function mixedWeights(replies: readonly Reply[]): boolean {
  const answered = replies.filter((reply): reply is ClassifyReply => !isErrorReply(reply));
  return answered.length === replies.length && answered.some((reply) => reply.model.sha256 !== answered[0].model.sha256);
}

export function isAnswered(outcome: AnsweredInference | ErrorReply): outcome is AnsweredInference {
  return !('error' in outcome);
}
