/**
 * The int8 fidelity report as stored (the int8 sidecar and the store's manifest) and shown.
 * A leaf module (zod only), so the store can validate it without loading the quantizer.
 */
import { z } from 'zod';

export const fidelityReportSchema = z.object({
  held_apart_images: z.number().int(),
  pooled_sqnr_db: z.number(),
  logits_sqnr_db: z.number(),
  /** Fractions of the held-apart images. */
  top1_agreement: z.number(),
  int8_top1_in_fp32_top5: z.number(),
  /** Largest |p_int8 − p_fp32| over every class of every held-apart image. */
  max_probability_diff: z.number(),
  layers: z.array(z.object({ tensor: z.string(), sqnr_db: z.number() })),
  images: z.array(
    z.object({
      name: z.string(),
      fp32_top1: z.number().int(),
      int8_top1: z.number().int(),
      int8_top1_rank_in_fp32: z.number().int(),
      max_probability_diff: z.number(),
    }),
  ),
});
export type FidelityReport = z.infer<typeof fidelityReportSchema>;

export const quantizationSettingsSchema = z.object({
  activationType: z.enum(['u8', 's8']),
  calibration: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('minmax') }),
    z.object({ kind: z.literal('percentile'), percentile: z.number().gt(50).lte(100) }),
  ]),
  /** Nodes left in fp32: 'first-conv', 'classifier', or node names. */
  keepFloat: z.array(z.string()),
  /** Versions of each calibration photo (the original plus seeded augmentations). */
  augmentationsPerPhoto: z.number().int().min(1).max(64),
  seed: z.number().int().nonnegative(),
  /** Synthetic images added to the held-apart photos. */
  heldApartSynthetic: z.number().int().min(0).max(256),
});
export type QuantizationSettings = z.infer<typeof quantizationSettingsSchema>;

/** What the store's manifest records about its int8 model. */
export const int8ManifestSchema = z.object({
  file: z.string(),
  key: z.string(),
  quantizer: z.string(),
  settings: quantizationSettingsSchema,
  createdAt: z.string(),
  report: fidelityReportSchema,
});
export type Int8ManifestEntry = z.infer<typeof int8ManifestSchema>;
