# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_trtllm_prune_global_optspecs
    string join \n checkpoint_dir= out_dir= prune_all prune= keep= dry-run verify in-place full-copy hollow ranks= j/jobs= no-fsync fetch-jobs= json v/verbose q/quiet color= h/help V/version
end

function __fish_trtllm_prune_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_trtllm_prune_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_trtllm_prune_using_subcommand
    set -l cmd (__fish_trtllm_prune_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l checkpoint_dir -d 'Input checkpoint folder (config.json and rank*.safetensors), local or a URL: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, http(s)://host/path, hf://ORG/NAME[@REVISION] (a Hugging Face Hub repository) (credentials from the usual environment)' -r -f -a "(__fish_complete_directories)"
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l out_dir -d 'Output folder [default: <checkpoint_dir>.pruned]' -r -f -a "(__fish_complete_directories)"
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l prune -d 'Also prune tensors matching PATTERN: a name fragment, or a glob over the whole name when it has `*`, `?` or `[...]` (e.g. `*mlp.[fg]*`; `*` crosses dots). Repeatable' -r -f
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l keep -d 'Never prune tensors matching PATTERN (as --prune), even with --prune_all. Repeatable' -r -f
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l ranks -d 'Only these ranks, e.g. `0-3,6` (to spread one checkpoint over machines)' -r
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -s j -l jobs -d 'Files copied at once [default: number of cores, at most the number of files]' -r
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l fetch-jobs -d 'Ranged requests in flight at once for a remote checkpoint, across all its files' -r
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l color -d 'Color `warning:` and `error:` on stderr: auto (on a terminal, unless NO_COLOR is set), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l prune_all -d 'Remove all weights, not only the prunable ones'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l dry-run -d 'Read, validate and print the plan; write nothing'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l verify -d 'Re-read every output and compare it with the input (CRC32) before committing; any mismatch keeps nothing and exits 1'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l in-place -d 'Prune the checkpoint folder itself (for disks that cannot hold two copies); the originals are replaced only once every output is complete, keeping their owner, permissions, extended attributes and ACL, and only if each is still the file the run read. Not with --ranks: config.json would claim `is_pruned` over ranks left as they were'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l full-copy -d 'Copy a folder that is not a TensorRT-LLM checkpoint (Hugging Face style) even when the rule prunes none of its tensors; without it, such a run is refused with suggested --prune patterns'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l hollow -d 'Keep every tensor\'s shape and offsets: emptied tensors read as zeros and are stored as holes (the file has the input\'s size but takes about its kept bytes on disk), so loaders that check shapes accept it. Holes are lost on filesystems without sparse files and through copies that fill them'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l no-fsync -d 'Do not flush outputs to disk before the commit: faster, and still safe against a kill, but a power cut during or soon after the run can leave an output folder that the next run has to repair or redo'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -l json -d 'Print one JSON document on stdout instead of the table; a failure prints {"error": {...}} there (and its message on stderr)'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -s v -l verbose -d 'Show the plan on stderr before the run: -v per file, -vv per tensor (with --dry-run, -v lists the tensors on stdout)'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -s q -l quiet -d 'No progress bars, no summary and no warnings'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -s V -l version -d 'Print version'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -f -a "inspect" -d 'List the tensors of a checkpoint folder or a .safetensors file (name, dtype, shape, bytes, offset), its metadata, and what the rule would prune. Reads headers only'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -f -a "verify" -d 'Check an existing pruned output against its checkpoint and the rule it was pruned with: tensors the rule prunes empty, the others byte-identical (CRC32), every dtype and name kept'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -f -a "man" -d 'Print the man page (roff)'
complete -c trtllm-prune -n "__fish_trtllm_prune_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand inspect" -l prune -d 'Also prune tensors matching PATTERN: a name fragment, or a glob over the whole name when it has `*`, `?` or `[...]` (e.g. `*mlp.[fg]*`; `*` crosses dots). Repeatable' -r -f
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand inspect" -l keep -d 'Never prune tensors matching PATTERN (as --prune), even with --prune_all. Repeatable' -r -f
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand inspect" -l color -d 'Color `warning:` and `error:` on stderr: auto (on a terminal, unless NO_COLOR is set), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand inspect" -l prune_all -d 'Remove all weights, not only the prunable ones'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand inspect" -l json -d 'Print one JSON document on stdout instead of the table; a failure prints {"error": {...}} there (and its message on stderr)'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand verify" -l checkpoint_dir -d 'The checkpoint the output was pruned from' -r -f -a "(__fish_complete_directories)"
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand verify" -l out_dir -d 'The pruned output [default: <checkpoint_dir>.pruned]' -r -f -a "(__fish_complete_directories)"
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand verify" -l prune -d 'Also prune tensors matching PATTERN: a name fragment, or a glob over the whole name when it has `*`, `?` or `[...]` (e.g. `*mlp.[fg]*`; `*` crosses dots). Repeatable' -r -f
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand verify" -l keep -d 'Never prune tensors matching PATTERN (as --prune), even with --prune_all. Repeatable' -r -f
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand verify" -l color -d 'Color `warning:` and `error:` on stderr: auto (on a terminal, unless NO_COLOR is set), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand verify" -l prune_all -d 'Remove all weights, not only the prunable ones'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand verify" -l hollow -d 'The output was pruned with --hollow: emptied tensors keep shape and offsets and must read as zeros'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand verify" -l json -d 'Print one JSON document on stdout instead of the table; a failure prints {"error": {...}} there (and its message on stderr)'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand verify" -s h -l help -d 'Print help'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand completions" -l color -d 'Color `warning:` and `error:` on stderr: auto (on a terminal, unless NO_COLOR is set), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand completions" -s h -l help -d 'Print help'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand man" -l color -d 'Color `warning:` and `error:` on stderr: auto (on a terminal, unless NO_COLOR is set), always or never' -r -f -a "auto\t''
always\t''
never\t''"
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand man" -s h -l help -d 'Print help'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand help; and not __fish_seen_subcommand_from inspect verify completions man help" -f -a "inspect" -d 'List the tensors of a checkpoint folder or a .safetensors file (name, dtype, shape, bytes, offset), its metadata, and what the rule would prune. Reads headers only'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand help; and not __fish_seen_subcommand_from inspect verify completions man help" -f -a "verify" -d 'Check an existing pruned output against its checkpoint and the rule it was pruned with: tensors the rule prunes empty, the others byte-identical (CRC32), every dtype and name kept'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand help; and not __fish_seen_subcommand_from inspect verify completions man help" -f -a "completions" -d 'Print a shell completion script'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand help; and not __fish_seen_subcommand_from inspect verify completions man help" -f -a "man" -d 'Print the man page (roff)'
complete -c trtllm-prune -n "__fish_trtllm_prune_using_subcommand help; and not __fish_seen_subcommand_from inspect verify completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
