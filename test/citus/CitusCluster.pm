# A Citus cluster for the TAP tests in test/citus (not a test itself: prove
# runs only *.pl): a coordinator and N workers on loopback, each with
# shared_preload_libraries = 'citus', trust for 127.0.0.1 (the nodes connect
# to each other over TCP), the citus extension created in the database
# 'postgres' of every node, the coordinator registered and the workers added
# (../shared/citus/README.md, "A test cluster, as it is known to work here").
#
#   use FindBin;
#   use lib $FindBin::RealBin;
#   use CitusCluster;
#   my ($coord, @workers) = CitusCluster::start(2);
#
# Every node is a PostgreSQL::Test::Cluster, stopped at the end of the
# script as usual.  CitusCluster::start(N, %conf) appends %conf
# (name => value) to every node's postgresql.conf.
package CitusCluster;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Cwd qw(abs_path);
use FindBin;

# new_node($name, %conf): one node with Citus preloaded and created.
sub new_node
{
	my ($name, %conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 0);
	my $extra = join('', map { "$_ = $conf{$_}\n" } sort keys %conf);
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'citus'
listen_addresses = '127.0.0.1'
max_prepared_transactions = 20
max_connections = 100
citus.log_remote_commands = off
$extra});
	# the nodes reach each other over TCP as the bootstrap superuser
	$node->append_conf('pg_hba.conf', "host all all 127.0.0.1/32 trust\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION citus');
	return $node;
}

# add_worker($coord, $name, %conf): a new worker, added to the cluster (as
# a DBA adds a node later).
sub add_worker
{
	my ($coord, $name, %conf) = @_;
	my $node = new_node($name, %conf);
	$coord->safe_psql('postgres',
		"SELECT pg_catalog.citus_add_node('127.0.0.1', " . $node->port . ')');
	return $node;
}

# start($nworkers, %conf): the nodes, coordinator first, all running.
sub start
{
	my ($nworkers, %conf) = @_;
	$nworkers //= 2;
	my @nodes;
	for my $i (0 .. $nworkers)
	{
		push @nodes, new_node($i == 0 ? 'coord' : "worker$i", %conf);
	}
	my ($coord, @workers) = @nodes;
	$coord->safe_psql('postgres',
		"SELECT pg_catalog.citus_set_coordinator_host('127.0.0.1', " . $coord->port . ')');
	for my $w (@workers)
	{
		$coord->safe_psql('postgres',
			"SELECT pg_catalog.citus_add_node('127.0.0.1', " . $w->port . ')');
	}
	my $n = $coord->safe_psql('postgres',
		"SELECT count(*) FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' AND isactive");
	die "CitusCluster: expected " . ($nworkers + 1) . " active nodes, found $n"
	  unless $n == $nworkers + 1;
	return @nodes;
}

# shells_empty($node, $db, $when): one test that no table of our schema on
# $node (the shells: Citus hides the shard relations from pg_class) holds
# a row on disk.
my $shell_sql = q{
	SELECT coalesce(string_agg(c.relname || '=' || pg_relation_size(c.oid), ', '), 'empty')
	  FROM pg_class c WHERE c.relnamespace = 'tgt_profile'::regnamespace
	   AND c.relkind IN ('r', 'p') AND pg_relation_size(c.oid) > 0};

sub shells_empty
{
	my ($node, $db, $when) = @_;
	is($node->safe_psql($db, $shell_sql), 'empty',
		($when ? "$when, " : '') . 'the shells on ' . $node->name . ' hold no rows');
}

# run_regress($node, $db, $program, $label, $outname, @tests): pg_regress or
# pg_isolation_regress ($program) against $node with the files beside the
# calling script (test/citus: sql/, specs/, expected/), run from there so
# the drivers' \i finds sql/scenario/; one test per file, named
# "$label <file>", with its part of regression.diffs on failure.
sub run_regress
{
	my ($node, $db, $program, $label, $outname, @tests) = @_;
	my $dir = abs_path($FindBin::RealBin);
	my $outdir = abs_path($PostgreSQL::Test::Utils::tmp_check) . "/$outname";
	my ($bindir) = PostgreSQL::Test::Utils::run_command([ 'pg_config', '--bindir' ]);
	chomp $bindir;
	mkdir $outdir;
	my ($stdout, $stderr) = ('', '');
	IPC::Run::run([ $program, '--use-existing', '--host=' . $node->host, '--port=' . $node->port,
			"--dbname=$db", "--bindir=$bindir", "--inputdir=$dir", "--outputdir=$outdir", @tests ],
		'>', \$stdout, '2>', \$stderr, init => sub { chdir $dir or die "chdir $dir: $!" });
	note($stdout);
	my $diffs = -f "$outdir/regression.diffs" ? slurp_file("$outdir/regression.diffs") : '';
	for my $t (@tests)
	{
		my ($result) = $stdout =~ /^(?:test\s+)?\Q$t\E\s+\.\.\.\s+(ok|FAILED|failed)\b/m;
		ok(defined $result && $result eq 'ok', "$label $t") or do
		{
			diag("$label $t: " . ($result // 'not run') . ($stderr ne '' ? "\n$stderr" : ''));
			my ($d) = $diffs =~ m{^(diff [^\n]*/\Q$t\E\.out\n.*?)(?=^diff |\z)}ms;
			diag($d) if $d;
		};
	}
}

1;
