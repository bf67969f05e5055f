/** Where bench/ and test/ find the checkout's files: models, fixtures. */
import { REPO_ROOT } from '../lib/repo-root.ts';

export { REPO_ROOT };
/** Generated once by `npm test`'s pretest step (seeded, untrained), shared by all test files. */
export const TEST_MODEL_DIR = `${REPO_ROOT}models/test-resnet50`;
export const PHOTOS_DIR = `${REPO_ROOT}test/fixtures/photos`;
/** The same layer types at a fraction of the cost, for tests through slow paths (a software GPU). */
export const TINY_MODEL_DIR = `${REPO_ROOT}models/test-tiny`;
