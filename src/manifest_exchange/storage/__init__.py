"""S3 access and the embedded SeaweedFS stack."""
