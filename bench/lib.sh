# Shared by the bench scripts (sourced, not run).

best() {  # best wall time of 3 runs of "$@", in seconds
    local b=999999
    for _ in 1 2 3; do
        local t0 t1
        t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N)
        b=$(python3 -c "print(min($b, $t1 - $t0))")
    done
    echo "$b"
}
