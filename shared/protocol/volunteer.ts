/**
 * The volunteer protocol on `/ws/volunteer`, shared by the hub and the browser tab and
 * validated on both sides. Control messages are JSON text frames; jobs travel hub → tab as
 * binary frames (a fixed header, then the preprocessed 224×224×3 RGB images), so every
 * executor sees exactly the bytes the hub's own workers see.
 */
import { z } from 'zod';
import { MAX_TOP, NUM_CLASSES } from '../labels.ts';

/**
 * Version 2 adds `pause` and `resume` (a hidden or frozen tab). A tab asks for
 * it by connecting with `?protocol=2`; the welcome says which version the connection speaks, and
 * the hello repeats it. A tab that does not ask (one loaded before the hub was upgraded) is
 * welcomed with version 1 and served as before.
 */
export const VOLUNTEER_PROTOCOL_VERSION = 2;
export const VOLUNTEER_PROTOCOL_VERSIONS = [1, 2] as const;
export type VolunteerProtocolVersion = (typeof VOLUNTEER_PROTOCOL_VERSIONS)[number];
const ProtocolVersionSchema = z.union([z.literal(1), z.literal(2)]);

/** The version a connection speaks, from the `protocol` query parameter of its URL. */
export function negotiateProtocol(asked: string | null): VolunteerProtocolVersion {
  const version = Number(asked);
  return Number.isInteger(version) && version >= VOLUNTEER_PROTOCOL_VERSION ? VOLUNTEER_PROTOCOL_VERSION : 1;
}

/** Why a tab stops taking work for a while: it is hidden, or the browser is freezing it (Page Lifecycle). */
export const PAUSE_REASONS = ['hidden', 'frozen'] as const;
export type PauseReason = (typeof PAUSE_REASONS)[number];
/** Largest text frame a volunteer may send; results are a few hundred bytes. */
export const MAX_VOLUNTEER_MESSAGE_BYTES = 64 * 1024;
export const MAX_VOLUNTEER_BATCH = 16;

/** Close codes the hub sends a tab (4000–4999 are the application's own): the tab reads them too. */
export const CLOSE_BYE = 1000;
export const CLOSE_STOP = 1001;
export const CLOSE_VIOLATIONS = 1008;
export const CLOSE_REFUSED = 4001;
export const CLOSE_QUARANTINED_EARLY = 4002;
export const CLOSE_MODEL_CHANGED = 4003;

export const VOLUNTEER_BACKENDS = ['webgpu', 'webgl', 'wasm'] as const;
export type VolunteerBackend = (typeof VOLUNTEER_BACKENDS)[number];

const AdapterSchema = z.object({
  vendor: z.string().max(200).optional(),
  architecture: z.string().max(200).optional(),
  description: z.string().max(500).optional(),
});
export type AdapterInfo = z.infer<typeof AdapterSchema>;

const TopKRow = z.array(z.int().min(0).max(NUM_CLASSES - 1)).min(1).max(MAX_TOP);
const ProbabilityRow = z.array(z.number().min(0).max(1)).min(1).max(MAX_TOP);

/** Tab → hub. */
export const VolunteerMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('hello'),
    protocol: ProtocolVersionSchema,
    backend: z.enum(VOLUNTEER_BACKENDS),
    adapter: AdapterSchema.optional(),
    user_agent: z.string().max(500).optional(),
    model_sha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** Measured on the tab's warm-up, so the scheduler has an estimate before the first job. */
    per_image_ms: z.number().positive().max(600_000),
    max_batch: z.int().min(1).max(MAX_VOLUNTEER_BATCH),
  }),
  z.object({
    type: z.literal('result'),
    job_id: z.int().min(0),
    indices: z.array(TopKRow).min(1).max(MAX_VOLUNTEER_BATCH),
    probabilities: z.array(ProbabilityRow).min(1).max(MAX_VOLUNTEER_BATCH),
    compute_ms: z.number().min(0).max(3_600_000),
  }),
  z.object({ type: z.literal('job_failed'), job_id: z.int().min(0), message: z.string().max(1000) }),
  z.object({ type: z.literal('heartbeat'), sent_at: z.number() }),
  z.object({ type: z.literal('bye') }),
  /** Version 2: no more work for now; a job in hand is handed back (the hub runs it elsewhere). */
  z.object({ type: z.literal('pause'), reason: z.enum(PAUSE_REASONS) }),
  /** Version 2: work again. */
  z.object({ type: z.literal('resume') }),
]);
export type VolunteerMessage = z.infer<typeof VolunteerMessageSchema>;

/** The model a tab must run: where its files are, and the weights' SHA-256 they must have. */
const VolunteerModelSchema = z.object({ url: z.string(), sha256: z.string(), weights: z.enum(['imagenet', 'untrained']) });

/** Hub → tab. */
export const HubMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('welcome'),
    protocol: ProtocolVersionSchema,
    volunteer_id: z.string(),
    model: VolunteerModelSchema,
    heartbeat_ms: z.number().positive(),
    top_k: z.int().min(1).max(MAX_TOP),
    max_batch: z.int().min(1).max(MAX_VOLUNTEER_BATCH),
  }),
  z.object({ type: z.literal('heartbeat'), sent_at: z.number() }),
  z.object({ type: z.literal('stop'), reason: z.string() }),
  z.object({ type: z.literal('quarantined'), reason: z.string() }),
  z.object({ type: z.literal('refused'), reason: z.string() }),
  /** The hub now serves another model: the tab reconnects at once and is welcomed with it. */
  z.object({ type: z.literal('model'), model: VolunteerModelSchema }),
]);
export type HubMessage = z.infer<typeof HubMessageSchema>;

/**
 * Binary job frame: a 16-byte little-endian header, then `batch` images of
 * height × width × 3 bytes.
 *   0  u32  magic 0x424f4a52 ("RJOB")
 *   4  u32  job id
 *   8  u16  batch
 *  10  u16  height
 *  12  u16  width
 *  14  u16  channels
 */
export const JOB_MAGIC = 0x424f4a52;
export const JOB_HEADER_BYTES = 16;

export interface JobFrame {
  jobId: number;
  batch: number;
  height: number;
  width: number;
  channels: number;
  /** batch × height × width × channels bytes. */
  pixels: Uint8Array;
}

export function encodeJobFrame(jobId: number, images: readonly Uint8Array[], height: number, width: number): Uint8Array {
  const imageBytes = height * width * 3;
  const frame = new Uint8Array(JOB_HEADER_BYTES + images.length * imageBytes);
  const view = new DataView(frame.buffer);
  view.setUint32(0, JOB_MAGIC, true);
  view.setUint32(4, jobId, true);
  view.setUint16(8, images.length, true);
  view.setUint16(10, height, true);
  view.setUint16(12, width, true);
  view.setUint16(14, 3, true);
  images.forEach((image, i) => {
    if (image.length !== imageBytes) throw new RangeError(`image ${i} has ${image.length} bytes, expected ${imageBytes}`);
    frame.set(image, JOB_HEADER_BYTES + i * imageBytes);
  });
  return frame;
}

/** The job id in a frame's header, when it has one: a frame that fails to decode is still answered by id. */
export function peekJobId(frame: Uint8Array): number | null {
  if (frame.length < JOB_HEADER_BYTES) return null;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  return view.getUint32(0, true) === JOB_MAGIC ? view.getUint32(4, true) : null;
}

/** Parses and checks a job frame; throws a RangeError saying what is wrong. */
export function decodeJobFrame(frame: Uint8Array): JobFrame {
  if (frame.length < JOB_HEADER_BYTES) throw new RangeError(`job frame of ${frame.length} bytes is shorter than its header`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (view.getUint32(0, true) !== JOB_MAGIC) throw new RangeError('not a job frame (bad magic)');
  const header = {
    jobId: view.getUint32(4, true),
    batch: view.getUint16(8, true),
    height: view.getUint16(10, true),
    width: view.getUint16(12, true),
    channels: view.getUint16(14, true),
  };
  if (header.batch < 1 || header.batch > MAX_VOLUNTEER_BATCH) throw new RangeError(`job batch ${header.batch} out of range`);
  if (header.channels !== 3) throw new RangeError(`job has ${header.channels} channels, expected 3`);
  const expected = JOB_HEADER_BYTES + header.batch * header.height * header.width * header.channels;
  if (frame.length !== expected) throw new RangeError(`job frame has ${frame.length} bytes, expected ${expected}`);
  return { ...header, pixels: frame.subarray(JOB_HEADER_BYTES) };
}
