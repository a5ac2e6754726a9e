version 1.0

# AIMI Model Hub at collection scale: scatter a manifest of SeriesInstanceUIDs into batches of `batch_size` series,
# run `aimi batch` once per batch in the model's image on a GPU VM (weights load once per batch; series download
# from IDC with idc-index while the previous one is segmented), gather the SEGs, ledgers and batch reports.
# Terra/Cromwell reads docker, gpuType, gpuCount, zones, preemptible, maxRetries; miniwdl runs it locally
# (workflows/README.md).

workflow aimi_batch {
  input {
    File manifest                       # TXT (one SeriesInstanceUID a line) or CSV/TSV with a SeriesInstanceUID column
    String model                        # e.g. bamf_nnunet_ct_kidney
    Int batch_size = 20
    String docker = "aimi/" + model
    String aimi = "aimi batch"          # the command; tests run `python -m aimi.batch.cli`
    String? source_dir                  # a DICOM folder on the worker instead of IDC (local runs, tests)
    Array[String] extra_args = []       # e.g. ["--no-tta", "--folds", "0"]
    Int retries = 1
    Float max_scratch_gb = 20
    String gpu_type = "nvidia-tesla-t4"
    Int gpu_count = 1
    String zones = "us-central1-a us-central1-b us-central1-c us-central1-f"
    Int preemptible = 2
    Int max_retries = 1
    Int cpu = 8
    String memory = "32 GiB"
    Int disk_gb = 100
  }

  call split_manifest { input: manifest = manifest, batch_size = batch_size }

  scatter (batch in split_manifest.batches) {
    call segment_batch {
      input:
        batch = batch, model = model, docker = docker, aimi = aimi, source_dir = source_dir,
        extra_args = extra_args, retries = retries, max_scratch_gb = max_scratch_gb, gpu_type = gpu_type,
        gpu_count = gpu_count, zones = zones, preemptible = preemptible, max_retries = max_retries,
        cpu = cpu, memory = memory, disk_gb = disk_gb
    }
  }

  output {
    Array[File] segs = flatten(segment_batch.segs)
    Array[File] ledgers = segment_batch.ledger
    Array[File] reports = segment_batch.report
  }
}

# One UID list per batch; a CSV's SeriesInstanceUID column (or its first column) is used, duplicates dropped.
task split_manifest {
  input {
    File manifest
    Int batch_size
  }
  command <<<
    set -euo pipefail
    mkdir -p batches
    awk -F'[,\t]' '
      /^[[:space:]]*(#|$)/ { next }
      !started { started = 1; for (i = 1; i <= NF; i++) { h = $i; gsub(/["\r ]/, "", h); if (h == "SeriesInstanceUID") column = i }
                 if (column) next; column = 1 }
      { uid = $column; gsub(/["\r ]/, "", uid); if (uid ~ /^[0-9]+(\.[0-9]+)*$/ && !seen[uid]++) print uid }
    ' "~{manifest}" > uids.txt
    test -s uids.txt || { echo "manifest holds no SeriesInstanceUIDs" >&2; exit 2; }
    split -l ~{batch_size} -d -a 5 --additional-suffix=.txt uids.txt batches/batch_
  >>>
  output {
    Array[File] batches = glob("batches/batch_*.txt")
  }
  runtime {
    docker: "ubuntu:24.04"
    cpu: 1
    memory: "1 GiB"
    preemptible: 3
    maxRetries: 1
  }
}

# `aimi batch` over one batch. Exit 1 (some series failed) still delivers the rest: the ledger says which and why.
task segment_batch {
  input {
    File batch
    String model
    String docker
    String aimi
    String? source_dir
    Array[String] extra_args
    Int retries
    Float max_scratch_gb
    String gpu_type
    Int gpu_count
    String zones
    Int preemptible
    Int max_retries
    Int cpu
    String memory
    Int disk_gb
  }
  String name = basename(batch, ".txt")
  command <<<
    set -uo pipefail
    ~{aimi} ~{model} --manifest "~{batch}" -o out ~{"--source " + source_dir} --retries ~{retries} \
      --max-scratch-gb ~{max_scratch_gb} ~{sep=" " extra_args}
    status=$?
    if [ "$status" -gt 1 ]; then exit "$status"; fi
    # distinct names for the gathered files: <SeriesInstanceUID>.<model>.seg.dcm and <batch>.ledger.sqlite
    mkdir -p gathered
    for seg in out/*/*.seg.dcm; do
      [ -e "$seg" ] && ln "$seg" "gathered/$(basename "$(dirname "$seg")").$(basename "$seg")"
    done
    cp out/ledger.sqlite "~{name}.ledger.sqlite"
    cp out/batch-report.json "~{name}.batch-report.json"
    exit 0
  >>>
  output {
    Array[File] segs = glob("gathered/*.seg.dcm")
    File ledger = "~{name}.ledger.sqlite"
    File report = "~{name}.batch-report.json"
  }
  runtime {
    docker: docker
    gpuType: gpu_type
    gpuCount: gpu_count
    zones: zones
    preemptible: preemptible
    maxRetries: max_retries
    cpu: cpu
    memory: memory
    disks: "local-disk " + disk_gb + " SSD"
  }
}
