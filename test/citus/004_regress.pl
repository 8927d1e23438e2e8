# The regression scenarios of the profile API, tokens, settings, approvers
# and batches on a Citus coordinator with two workers, the tables
# distributed by client: pg_regress over test/citus/sql against the
# coordinator, one TAP test per file.  Each scenario (sql/scenario/*.sql)
# runs twice: NAME_delegated makes every call a plain statement, which
# Citus delegates to the worker holding the client's shard; NAME_coordinator
# wraps every call in BEGIN ... COMMIT, where Citus delegates nothing: the
# call runs on the coordinator and reaches the shard through SQL.  The
# expected outputs are what the same files print on one node without Citus.
use strict;
use warnings;
use File::Basename qw(dirname);
use FindBin;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../t";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CitusCluster;
use TgtProfileTest;

my @scenarios = qw(tokens profiles settings approvers batches);
my @tests = ('setup', map { ("${_}_delegated", "${_}_coordinator") } @scenarios);

# pg_regress: run-tests.sh names it in PG_REGRESS; else PGXS's copy.
my $pg_regress = $ENV{PG_REGRESS};
if (!$pg_regress)
{
	my ($pgxs) = run_command([ 'pg_config', '--pgxs' ]);
	chomp $pgxs;
	$pg_regress = dirname(dirname($pgxs)) . '/src/test/regress/pg_regress';
}
plan skip_all => "no pg_regress at $pg_regress (postgresql-server-dev)" unless -x $pg_regress;

my ($coord, @workers) = CitusCluster::start(2);
my $db = 'postgres';
$coord->safe_psql($db, q{
	CREATE EXTENSION tgt_profile CASCADE;
	SELECT tgt_profile.distribute();
});

# The two routes, as the scenarios rely on them: a plain statement is
# delegated, a call inside BEGIN ... COMMIT is not.
my ($out, $state, $err) = psql_state($coord, $db,
	"SET client_min_messages = debug1; SELECT tgt_profile.verify_token('x', 'tgtp_x')");
like($err, qr/pushing down the function call/, 'a plain statement is delegated');
($out, $state, $err) = psql_state($coord, $db,
	"BEGIN; SET LOCAL client_min_messages = debug1; SELECT tgt_profile.verify_token('x', 'tgtp_x'); COMMIT");
unlike($err, qr/pushing down the function call/, 'a call inside BEGIN ... COMMIT runs on the coordinator');

# pg_regress runs psql in test/citus, where the drivers' \i finds
# sql/scenario/ (psql reads the file from stdin: \ir would not help).
CitusCluster::run_regress($coord, $db, $pg_regress, 'pg_regress', 'citus_regress', @tests);

# Whatever the calls did, the rows are in the shards: no shell holds one.
CitusCluster::shells_empty($_, $db, 'after the scenarios') for ($coord, @workers);

done_testing();
