#!/usr/bin/perl
# memsample.pl PID OUT [INTERVAL_MS]
#
# Samples RssAnon of process PID (from /proc/PID/status, world-readable)
# every INTERVAL_MS (default 20) until OUT.stop exists or PID is gone, then
# writes "BASE_KB PEAK_KB SAMPLES" to OUT.  The first sample is the baseline;
# OUT.ready is created once it is taken, so that the caller can start the
# measured work only then.
#
# Why RssAnon: it is the resident anonymous memory of the process — what
# palloc/malloc gave the backend (memory contexts, local buffers of temp
# tables, the detoasted batch, libjansson's trees) — and nothing of the
# shared memory segment (shared_buffers pages are RssShmem) or of mapped
# files.  VmHWM is the peak of the whole RSS, so it would also count every
# shared buffer the backend touched; Private_Dirty of smaps_rollup counts a
# shared-buffer page as private as long as no other process has mapped it.
# Anonymous pages inherited from the postmaster are in the baseline and
# cancel out.
use strict;
use warnings;
use Time::HiRes qw(sleep);

my ($pid, $out, $ms) = @ARGV;
die "usage: memsample.pl PID OUT [INTERVAL_MS]\n" unless defined $out;
$ms ||= 20;

sub rss_anon {
	open(my $f, '<', "/proc/$pid/status") or return undef;
	while (<$f>) {
		return $1 if /^RssAnon:\s+(\d+)\s+kB/;
	}
	return undef;
}

my $base = rss_anon();
die "memsample.pl: no process $pid\n" unless defined $base;
my ($peak, $n) = ($base, 1);
open(my $r, '>', "$out.ready") or die "$out.ready: $!\n";
close $r;
while (1) {
	my $v = rss_anon();
	last unless defined $v;
	$n++;
	$peak = $v if $v > $peak;
	last if -e "$out.stop";
	sleep($ms / 1000);
}
open(my $o, '>', "$out.tmp") or die "$out.tmp: $!\n";
print $o "$base $peak $n\n";
close $o;
rename("$out.tmp", $out) or die "rename $out: $!\n";
