SUMMARY = "meta-ocify's self-test image on another image recipe's OCI archive (OCIFY_IMAGE_BASE = a recipe)"
require ocify-selftest-on-base.inc
OCIFY_IMAGE_BASE = "ocify-selftest-image"
