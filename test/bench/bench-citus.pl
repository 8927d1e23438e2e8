# bench-citus.pl: tgt_profile on a Citus cluster (a coordinator and two
# workers on this machine, test/citus/CitusCluster.pm) against one node,
# side by side in one run (issue 11, "Measure"):
#
#   upsert_profile   pgbench, 2 clients, BENCH_SECONDS each:
#     one node                 the call on a node without Citus
#     delegated                a plain statement on the coordinator: Citus
#                              pushes the call to the shard's worker, where
#                              it reads and writes the local shard directly
#     coordinator routing      the same call inside BEGIN ... COMMIT: it
#                              runs on the coordinator and reaches the shard
#                              through SQL that Citus routes
#   bulk_update      BULK_ROWS (500,000) new records, a CSV batch, one call:
#     one node, delegated, coordinator routing (as above)
#
# All nodes share this machine's cores, so absolute figures mean little; the
# ratios say what each route costs.  Not a test: prints a table, exits 0.
# Run by make bench (test/bench/bench-citus.sh sets up the environment).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../citus";
use lib "$FindBin::RealBin/../t";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use CitusCluster;

my $seconds = $ENV{BENCH_SECONDS} // 15;
my $rows = $ENV{BULK_ROWS} // 500000;
my $db = 'postgres';
my $conf = "shared_buffers = '512MB'\nmax_wal_size = '4GB'\nsynchronous_commit = off\n";

my ($coord, @workers) = CitusCluster::start(2, shared_buffers => "'512MB'",
	max_wal_size => "'4GB'", synchronous_commit => 'off');
my $single = PostgreSQL::Test::Cluster->new('single');
$single->init;
$single->append_conf('postgresql.conf', $conf);
$single->start;

my $setup = q{
	CREATE EXTENSION IF NOT EXISTS tgt_profile CASCADE;
	SET client_min_messages = warning;
};
$single->safe_psql($db, $setup . q{SELECT tgt_profile.create_client('b', false)});
$coord->safe_psql($db, $setup . q{
	SELECT tgt_profile.distribute();
	SELECT tgt_profile.create_client('b', false);
});

# the batch, made once per cluster into a table (not timed)
my $make_batch = qq{
	CREATE TABLE public.batch AS
	SELECT 'batch=pcId,a,b' || E'\\n' ||
		   string_agg(format('v%s,x%s,y%s', i, i % 97, i % 89), E'\\n' ORDER BY i) || E'\\n' AS b
	  FROM generate_series(1, $rows) i;
};

my @summary;

sub pgbench_tps
{
	my ($node, $name, $script) = @_;
	my $file = $node->basedir . "/$name.pgbench";
	PostgreSQL::Test::Utils::append_to_file($file, $script);
	my ($stdout, $stderr);
	IPC::Run::run([ 'pgbench', '-n', '-c', '2', '-j', '2', '-T', $seconds, '-f', $file,
		'-h', $node->host, '-p', $node->port, $db ], '>', \$stdout, '2>', \$stderr)
	  or die "pgbench $name failed: $stderr";
	my ($tps) = $stdout =~ /tps = ([0-9.]+)/;
	return $tps;
}

my $upsert = q{\set id random(1, 100000)
\set v random(1, 1000000000)
SELECT * FROM tgt_profile.upsert_profile('b', jsonb_build_object('attr', :v::int), 'visitor-' || :id);
};
my $in_txn = "BEGIN;\n" . $upsert . "COMMIT;\n";
$in_txn =~ s/^BEGIN;\n(\\set[^\n]*\n\\set[^\n]*\n)/$1BEGIN;\n/;

my %tps;
$tps{single} = pgbench_tps($single, 'upsert_single', $upsert);
$tps{delegated} = pgbench_tps($coord, 'upsert_delegated', $upsert);
$tps{coordinator} = pgbench_tps($coord, 'upsert_coordinator', $in_txn);

sub bulk_seconds
{
	my ($node, $sql) = @_;
	my $t0 = time;
	$node->safe_psql($db, $sql);
	return time - $t0;
}

my %bulk;
for my $n ($single, $coord)
{
	$n->safe_psql($db, $make_batch);
}
$bulk{single} = bulk_seconds($single,
	q{SELECT rows_created FROM tgt_profile.bulk_update('b', (SELECT b FROM public.batch))});
# delegated: the batch text is the call's argument, shipped to the worker
my $batch_literal_sql = q{SELECT rows_created FROM tgt_profile.bulk_update('b', :'batch')};
$coord->safe_psql($db, q{SELECT tgt_profile.drop_client('b'); SELECT tgt_profile.create_client('b', false)});
{
	my $file = $coord->basedir . '/batch.csv';
	my $text = $coord->safe_psql($db, 'SELECT b FROM public.batch');
	PostgreSQL::Test::Utils::append_to_file($file, $text . "\n");
	my $t0 = time;
	$coord->safe_psql($db, "\\set batch `cat $file`\n" . $batch_literal_sql);
	$bulk{delegated} = time - $t0;
}
$coord->safe_psql($db, q{SELECT tgt_profile.drop_client('b'); SELECT tgt_profile.create_client('b', false)});
$bulk{coordinator} = bulk_seconds($coord,
	q{BEGIN; SELECT rows_created FROM tgt_profile.bulk_update('b', (SELECT b FROM public.batch)); COMMIT;});

my $fmt = "%-34s %12s %12s %12s\n";
my $out = sprintf($fmt, '', 'one node', 'delegated', 'coordinator');
$out .= sprintf($fmt, 'upsert_profile, tps (2 clients)', map { sprintf('%.0f', $tps{$_}) } qw(single delegated coordinator));
$out .= sprintf($fmt, '  ratio to one node', '1.00', map { sprintf('%.2f', $tps{$_} / $tps{single}) } qw(delegated coordinator));
$out .= sprintf($fmt, '  delegated / coordinator', '', sprintf('%.2f', $tps{delegated} / $tps{coordinator}), '');
$out .= sprintf($fmt, "bulk_update $rows new, seconds", map { sprintf('%.2f', $bulk{$_}) } qw(single delegated coordinator));
$out .= sprintf($fmt, '  ratio to one node (time)', '1.00', map { sprintf('%.2f', $bulk{$_} / $bulk{single}) } qw(delegated coordinator));
diag("\n" . $out);
ok(1, 'benchmark ran');
done_testing();
