#!/bin/sh
# The bundled example's entrypoint: prints a greeting and the image's environment.
echo "hello from an image built by ocify (MODE=${MODE:-unset})"
