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

# start($nworkers, %conf): the nodes, coordinator first, all running.
sub start
{
	my ($nworkers, %conf) = @_;
	$nworkers //= 2;
	my @nodes;
	for my $i (0 .. $nworkers)
	{
		my $name = $i == 0 ? 'coord' : "worker$i";
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
		push @nodes, $node;
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

1;
