/**
 * The hinge of the design: what the scheduler knows of anything that runs the model. A local
 * worker thread and a volunteer's browser tab both look like this, so the scheduler never
 * knows where a batch runs.
 */
import type { TopK } from '../../shared/labels.ts';
import type { ExecutorInfo, ExecutorKind } from '../../shared/protocol/classify.ts';

/**
 * One image as an executor takes it: 224×224×3 uint8 RGB (what preprocessing makes), or the
 * model's own input already made from it (float32 NHWC, BGR, ImageNet means subtracted:
 * shared/caffe.ts), as a client may send it. Only executors that `takesTensors` get the latter.
 */
export type ModelInput = Uint8Array | Float32Array;

export interface BatchResult {
  /** One top-k per image, in the order the images were given. */
  results: TopK[];
  /** Time the executor itself spent on the batch. */
  inferenceMs: number;
  /** Per image, every class's probability, for the images that asked for them (run's `allClasses`). */
  allClasses?: Array<Float32Array | undefined>;
}

export interface Executor {
  readonly id: string;
  readonly kind: ExecutorKind;
  readonly engine: string;
  /** Most images it takes in one batch. */
  readonly maxBatch: number;
  /** Batches it runs at once. */
  readonly capacity: number;
  /** SHA-256 of the weights it computes with: it is given only jobs of that model. */
  readonly modelSha256: string;
  /** Whether it may be given work now (warm, not quarantined, not leaving). */
  readonly available: boolean;
  /**
   * Whether its expected time is its own record: a local worker always; a volunteer only once
   * it has answered enough jobs (before that it is what the tab claimed). Hedges go to proven
   * executors only, so a late job never lands on another unknown.
   */
  readonly proven: boolean;
  /** Expected time from handing over a batch of this size to its result. */
  expectedServiceMs(batchSize: number): number;
  /**
   * Runs one batch of preprocessed 224×224×3 RGB images. Rejects when the batch failed.
   * `reference[i]`: image i checks another executor's answer, so it must be computed at the
   * reference precision (fp32) even where this executor serves int8.
   */
  run(images: readonly ModelInput[], reference?: readonly boolean[], allClasses?: readonly boolean[]): Promise<BatchResult>;
  /**
   * Whether it can answer every class's probability, not only the top k (`allClasses` of run):
   * local workers can; a volunteer tab sends its top k only.
   */
  readonly returnsAllClasses?: boolean;
  /** Whether it takes images as the model's float input (ModelInput's Float32Array): local workers do; a tab takes RGB only. */
  readonly takesTensors?: boolean;
  /** Called whenever `available` may have changed, so the scheduler can look again. */
  onAvailabilityChange(listener: () => void): void;
  /**
   * Answers it has given since it last lost its standing (absent: its answers need no checking,
   * a local worker). Verification checks an executor with few of them more often.
   */
  readonly earnedAnswers?: number;
  /** Its batch ran so late that the scheduler ran it again elsewhere (a hedge). */
  noteLate?(): void;
  /** A hedge race it was in ended: whether its answer was the one that counted. */
  noteHedgeOutcome?(won: boolean): void;
}

/** Where a pool puts the executors it starts, and how busy it is: the scheduler, as seen from below. */
export interface ExecutorRegistry {
  addExecutor(executor: Executor): void;
  removeExecutor(executor: Executor): void;
  /** Jobs waiting for an executor. */
  readonly queueDepth: number;
}

export function describeExecutor(executor: Executor): ExecutorInfo {
  return { kind: executor.kind, id: executor.id, engine: executor.engine };
}
