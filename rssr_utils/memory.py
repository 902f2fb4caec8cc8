"""Resident-memory figures of this process from ``/proc/self/status`` (Linux), for the benchmark scripts."""

# For a measuring process: large blocks come from mmap and go back to the OS on free, so that RSS tracks what
# is in use (timed processes keep the default: mmap for every large block would add page faults).
MEASURE_ENV = {'MALLOC_MMAP_THRESHOLD_': '131072'}


def status_kib(field):
    """One ``/proc/self/status`` figure (e.g. 'VmRSS', 'VmHWM'), KiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} missing from /proc/self/status')


def reset_peak_rss():
    """Reset the peak (VmHWM) to the current RSS and return the current RSS, KiB."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    return status_kib('VmRSS')


def peak_rss_mib():
    """Peak resident memory of this process (VmHWM), MiB."""
    return status_kib('VmHWM') / 1024


def peak_growth_kib(fn):
    """Run ``fn()``; return its peak resident memory above the RSS before it, KiB."""
    base = reset_peak_rss()
    fn()
    return status_kib('VmHWM') - base
