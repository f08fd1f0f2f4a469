//! The man page's own sections, in roff (the options and subcommands come
//! from clap, in `main.rs`'s `man_page`).

/// The man page's DESCRIPTION, in roff: the rule list kept as a list.
pub const MAN_DESCRIPTION: &str = r#".SH DESCRIPTION
Empty the large weight matrices of a TensorRT\-LLM checkpoint (config.json + rank{N}.safetensors),
keeping every tensor name, dtype and the config, so the checkpoint can be shipped, tested or built
into a weight\-stripped engine without its weights.
.PP
Prune rule (the original trtllm\-prune's, exactly): a tensor is emptied when its name CONTAINS any of
.RS
.nf
attention.qkv.weight
attention.proj.weight
mlp.fc.weight
mlp.proj.weight
mlp.gate.weight
.fi
.RE
.PP
(so attention.qkv.weights_scaling_factor is emptied too, attention.dense.weight is kept).
With \-\-prune_all every tensor is emptied. \-\-prune PATTERN adds tensors, \-\-keep PATTERN
protects them (keep wins, even over \-\-prune_all). An emptied tensor keeps its dtype and gets
shape [0] and no bytes; every other tensor keeps its dtype, shape and bytes. With \-\-hollow, an
emptied tensor keeps its shape and offsets instead and reads as zeros, stored as a hole.
config.json gets "is_pruned": true.
.PP
A folder without rank{N}.safetensors is pruned as a generic safetensors checkpoint
(model.safetensors, or shards with model.safetensors.index.json).
.PP
Tensor bytes are streamed from input to output by the kernel; only headers are held in memory.
Outputs are written to temp files and committed together through a journal: at no instant is a
file missing or torn, and config.json is renamed last. A run killed during its commit is finished
by the next run into the folder.
.PP
Every option with two words also takes the other spelling: \-\-checkpoint\-dir, \-\-out\-dir,
\-\-prune\-all, \-\-dry_run, \-\-in_place, \-\-no_fsync. A pattern is a name fragment, or a
glob over the whole name when it has *, ? or [...] (e.g. *mlp.[fg]*).
.PP
With \-\-json, a run, a dry run, inspect and verify print one JSON document on stdout; a
failure prints {"error": {"kind", "message", "exit_code", "file"}} there, besides the message on
stderr. A script branches on kind, not on the message: not_found, invalid, header (a
safetensors header breaks a format rule), plan, refused (a set\-up that risks the data),
no_space, input_changed (an input changed or was replaced while read, or a target during the
commit: run again), mismatch, io, remote (credentials, a server without byte ranges, a
transfer that failed after retries; a missing or replaced object has the kind a local file
would), interrupted, aborted, after_commit (exit 3), commit_incomplete (exit 4); usage for a
usage error (exit 2).
"#;

/// The man page's EXIT STATUS section.
pub const MAN_EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
0
Success.
.TP
1
Bad input, a refused set\-up, an I/O failure or a verification mismatch: nothing changed.
.TP
2
Usage error.
.TP
3
The output is in place, but a step after the commit failed (the message says what is not
guaranteed, e.g. that the folder could not be flushed to disk).
.TP
4
The commit could be neither finished nor undone: some files are new, config.json is still old.
The next run into the folder finishes it.
.TP
129, 130, 143
Interrupted by SIGHUP, SIGINT or SIGTERM before the commit: nothing of the run is kept.
"#;

/// The man page's EXAMPLES section, kept as written.
pub const MAN_EXAMPLES: &str = r#".SH EXAMPLES
.nf
Prune specific weights (attention and MLP matrices; embeddings and norms stay):
  trtllm\-prune \-\-checkpoint_dir ./llama\-7b\-checkpoint \-\-out_dir ./llama\-7b\-pruned

Prune all weights, creating a minimal checkpoint skeleton:
  trtllm\-prune \-\-checkpoint_dir ./llama\-7b\-checkpoint \-\-out_dir ./llama\-7b\-skeleton \-\-prune_all

Default output folder is the sibling <checkpoint_dir>.pruned:
  trtllm\-prune \-\-checkpoint_dir ./original

Look before you cut, then also empty the output projection the original misses:
  trtllm\-prune \-\-checkpoint_dir ./original \-\-prune attention.dense.weight \-\-dry\-run \-v
  trtllm\-prune inspect ./original/rank0.safetensors
.fi
"#;

/// The man page's ENVIRONMENT section: what the remote checkpoints read
/// (docs/REMOTE.md has the details) and the terminal conventions.
pub const MAN_ENVIRONMENT: &str = r#".SH ENVIRONMENT
.nh
.ad l
.TP
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
Static credentials for s3:// checkpoints.
.TP
AWS_REGION, AWS_DEFAULT_REGION
The bucket's region (default us\-east\-1).
.TP
AWS_ENDPOINT_URL, AWS_ENDPOINT
Another S3 service (MinIO, Ceph, R2); AWS_ALLOW_HTTP=true allows a plain\-HTTP one.
.TP
AWS_VIRTUAL_HOSTED_STYLE_REQUEST, AWS_SKIP_SIGNATURE
The bucket in the host name; unsigned requests to a public bucket.
.TP
AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
Web identity (EKS) and ECS task credentials.
.TP
GOOGLE_SERVICE_ACCOUNT, GOOGLE_SERVICE_ACCOUNT_PATH, GOOGLE_SERVICE_ACCOUNT_KEY, GOOGLE_APPLICATION_CREDENTIALS
Credentials for gs:// checkpoints (a key file, the key itself, application default
credentials); otherwise the metadata server.
.TP
AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY, AZURE_STORAGE_TOKEN
Credentials for az:// checkpoints; also AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID
(service principal), AZURE_FEDERATED_TOKEN_FILE (workload identity) and
AZURE_STORAGE_USE_EMULATOR.
.TP
GOOGLE_BASE_URL, GOOGLE_SKIP_SIGNATURE, AZURITE_BLOB_STORAGE_URL
Another GCS service (fake\-gcs\-server) with unsigned requests; Azurite's address
when AZURE_STORAGE_USE_EMULATOR=true.
HF_ENDPOINT, HF_TOKEN, HF_TOKEN_PATH, HF_HOME
The Hub for hf:// checkpoints (default https://huggingface.co) and its token:
HF_TOKEN, else the file HF_TOKEN_PATH (default $HF_HOME/token, HF_HOME default
~/.cache/huggingface), as huggingface_hub reads them.
.TP
HTTPS_PROXY, NO_PROXY
The proxy for http(s):// and cloud checkpoints.
.TP
TRTLLM_PRUNE_STALL_TIMEOUT
Seconds a remote read may go without receiving a byte, retries included, before
it fails (default 60).
.TP
NO_COLOR
When set and not empty, warning: and error: are not colored (as \-\-color never;
\-\-color always still colors).
.ad b
.hy
"#;

/// The man page's SEE ALSO section: no other page exists, so documents.
pub const MAN_SEE_ALSO: &str = r#".SH "SEE ALSO"
.nh
.ad l
The guide (every flag, the JSON documents, recipes), the design and the remote
checkpoints are docs/GUIDE.md, docs/DESIGN.md and docs/REMOTE.md in the source
distribution. The safetensors format: https://github.com/huggingface/safetensors.
TensorRT\-LLM checkpoints: https://nvidia.github.io/TensorRT\-LLM/architecture/checkpoint.html.
.ad b
.hy
"#;
