/**
 * The official keras-applications ResNet50 ImageNet weights: where they are and how to check
 * them. The hub's defaults (--model-url, --model-md5) and the fetch tool both start here.
 */
export const KERAS_RESNET50_URL =
  'https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5';
export const KERAS_RESNET50_MD5 = '2cb95161c43110f7111970584f804107';
export const KERAS_RESNET50_FILE = 'resnet50_weights_tf_dim_ordering_tf_kernels.h5';

/** Overrides for mirrors and tests, read by the fetch CLI and the hub alike. */
export const MODEL_URL_ENV = 'HUB_MODEL_URL';
export const MODEL_MD5_ENV = 'HUB_MODEL_MD5';

export const MD5_PATTERN = /^[0-9a-fA-F]{32}$/;
