# Sourced by scripts/bench (its variables and helpers in scope): the cluster systems,
# ferrata-pg-N and seata-db-N, each N nodes on one PostgreSQL that this file starts on first use
# (scripts/services in its own state directory, fsync on) and scripts/bench stops on exit.
# shellcheck shell=bash disable=SC2154 # bench's variables

# run_cluster SYS ROUND: ferrata-pg-N or seata-db-N, N nodes on a fresh schema of the script's
# PostgreSQL (started on first use: fsync on, room for three seata-server pools), measured
# together with the database's processes, as round ROUND of the interleaved series.
pg_url="" pg_pid=""
run_cluster() {
    local sys="$1" round="$2" nodes="${1##*-}" schema="bench_${1//-/_}_r$2" i port targets=() pids=() rc=0
    if [[ -z "$pg_url" ]]; then
        log "starting PostgreSQL for the cluster systems (fsync on)"
        # A port below the ephemeral range: after the other systems' runs, client sockets in
        # TIME_WAIT hold ports there that nothing listens on, and PostgreSQL could not bind.
        FERRATA_POSTGRES_PORT=$(free_port) \
            FERRATA_SERVICES_DIR="$pg_services" FERRATA_POSTGRES_OPTS="-c max_connections=400" \
            "$root/scripts/services" start postgres >"$logs/postgres-start.log" 2>&1 \
            || { record_system "$sys" --status failed --reason "PostgreSQL did not start: $(tail_of "$logs/postgres-start.log" 3)"; return 1; }
        pg_url=$(FERRATA_SERVICES_DIR="$pg_services" "$root/scripts/services" env | sed -n 's/^export FERRATA_POSTGRES_URL=//p')
        pg_pid=$(head -n 1 "$(cat "$pg_services/postgres.dir")/data/postmaster.pid")
    fi
    record_system "$sys" --version "$([[ $sys == ferrata-* ]] && echo "$ferrata_version" || echo "$seata_version")"
    # Seata's tables: ferrata-server creates them when it first opens the schema.
    port=$(free_port)
    start_bg "$logs/$sys-r$round-schema.log" "$ferrata_bin" --listen "127.0.0.1:$port" --store-url "$pg_url" --store-schema "$schema"
    wait_until 60 port_in_use "$port" || { record_system "$sys" --status failed --reason "creating schema $schema failed: $(tail_of "$logs/$sys-r$round-schema.log" 3)"; stop_pid "$started_pid"; return 1; }
    stop_pid "$started_pid" TERM
    for ((i = 1; i <= nodes; i++)); do
        while port=$(free_port) && [[ " ${targets[*]} " == *":$port "* ]]; do :; done
        if [[ $sys == ferrata-* ]]; then
            start_bg "$logs/$sys-r$round-$i.log" "$ferrata_bin" --listen "127.0.0.1:$port" --store-url "$pg_url" --store-schema "$schema"
        else
            start_bg "$logs/$sys-r$round-$i.log" env REFERENCE_TC_VERSION="$seata_version" REFERENCE_TC_JVM_OPTS="$seata_jvm_opts" \
                REFERENCE_TC_STORE_URL="$pg_url" REFERENCE_TC_STORE_SCHEMA="$schema" REFERENCE_TC_NODE="$i" \
                REFERENCE_TC_STORE_MIN_CONN=10 REFERENCE_TC_STORE_MAX_CONN=100 \
                "$root/scripts/reference-tc" --listen "127.0.0.1:$port" --data-dir "$work/$sys-r$round-$i"
        fi
        pids+=("$started_pid")
        targets+=("127.0.0.1:$port")
    done
    tried "$sys" "round $round: started $nodes node(s) on 127.0.0.1 (${targets[*]}) sharing PostgreSQL schema $schema"
    for ((i = 0; i < nodes; i++)); do
        if ! wait_until 120 port_in_use "${targets[$i]##*:}"; then
            record_system "$sys" --status failed --reason "node $((i + 1)) did not serve: $(tail_of "$logs/$sys-r$round-$((i + 1)).log" 5)"
            for pid in "${pids[@]}"; do stop_pid "$pid" KILL; done
            return 1
        fi
    done
    local all_targets
    all_targets=$(IFS=,; echo "${targets[*]}")
    record_system "$sys" --status ok --listen "$all_targets" --workloads "${cluster_workloads[@]}"
    if [[ $sys == seata-* ]]; then
        log "$sys (round $round): warming the JVMs under at-commit load for ${jvm_warmup}s"
        tried "$sys" "JVMs warmed before measuring: ferrata-bench run --workload at-commit --connections 64 --duration-secs $jvm_warmup against every node (not measured)"
        "$bench_bin" run --target "$all_targets" --workload at-commit --connections 64 \
            --duration-secs "$jvm_warmup" --warmup-secs 0 >>"$logs/jvm-warmup.log" 2>&1 || true
    fi
    measure "$sys" "$logs/$sys-r$round-1.log" --round "$round" --server-pid "${pids[@]}" --store-pid "$pg_pid" \
        --target "$all_targets" --workloads "${cluster_workloads[@]}" || rc=$?
    for pid in "${pids[@]}"; do stop_pid "$pid" TERM; done
    return "$rc"
}
