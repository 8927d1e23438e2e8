# Isolation specs (test/citus/specs) on a Citus coordinator with two
# workers, the tables distributed by client: pg_isolation_regress against
# the coordinator, one TAP test per spec.  Each spec sets a session on one
# route against a session on the other: a plain statement (delegated to
# the worker holding the client's shard) and a call inside a transaction
# (run on the coordinator).  The expected outputs are what the same specs
# print on one node without Citus.
use strict;
use warnings;
use File::Basename qw(dirname);
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CitusCluster;

my @specs = qw(token_revoke profile_merge client_drop identity_merge);

# pg_isolation_regress: beside run-tests.sh's PG_REGRESS, else in PGXS.
my $regress_dir;
if ($ENV{PG_REGRESS})
{
	$regress_dir = dirname(dirname($ENV{PG_REGRESS}));
}
else
{
	my ($pgxs) = run_command([ 'pg_config', '--pgxs' ]);
	chomp $pgxs;
	$regress_dir = dirname(dirname($pgxs)) . '/src/test';
}
my $isolation_regress = "$regress_dir/isolation/pg_isolation_regress";
plan skip_all => "no pg_isolation_regress at $isolation_regress (postgresql-server-dev)"
  unless -x $isolation_regress;

my ($coord, @workers) = CitusCluster::start(2);
my $db = 'postgres';
$coord->safe_psql($db, q{
	CREATE EXTENSION tgt_profile CASCADE;
	SELECT tgt_profile.distribute();
});
# isolationtester sees a session as waiting through
# pg_isolation_test_session_is_blocked(), which knows only local locks: a
# delegated call, or a coordinator's statement on a shard, waits for a lock
# on a worker.  Citus's own version sees those waits too; its isolation
# tests swap it in the same way.
$coord->safe_psql($db, q{
	ALTER FUNCTION pg_catalog.pg_isolation_test_session_is_blocked(integer, integer[])
		RENAME TO old_pg_isolation_test_session_is_blocked;
	ALTER FUNCTION pg_catalog.citus_isolation_test_session_is_blocked(integer, integer[])
		RENAME TO pg_isolation_test_session_is_blocked;
});

CitusCluster::run_regress($coord, $db, $isolation_regress, 'isolation', 'citus_isolation', @specs);

done_testing();
