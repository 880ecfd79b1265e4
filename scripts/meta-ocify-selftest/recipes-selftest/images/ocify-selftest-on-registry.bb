SUMMARY = "meta-ocify's self-test image on a registry's image (OCIFY_IMAGE_BASE = a reference), fetched by do_ocify_fetch_base"
require ocify-selftest-on-base.inc
# test-yocto.sh passes the reference of the image it pushed to its registry (BB_ENV_PASSTHROUGH_ADDITIONS).
OCIFY_IMAGE_BASE ?= "127.0.0.1:5000/selftest/image:1"
