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
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use FindBin;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../t";
use IPC::Run;
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
my ($bindir) = run_command([ 'pg_config', '--bindir' ]);
chomp $bindir;

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
my $dir = abs_path($FindBin::RealBin);
my $outdir = abs_path($PostgreSQL::Test::Utils::tmp_check) . "/citus_regress";
mkdir $outdir;
my ($stdout, $stderr) = ('', '');
IPC::Run::run([ $pg_regress, '--use-existing', '--host=' . $coord->host, '--port=' . $coord->port,
		"--dbname=$db", "--bindir=$bindir", "--inputdir=$dir", "--outputdir=$outdir", @tests ],
	'>', \$stdout, '2>', \$stderr, init => sub { chdir $dir or die "chdir $dir: $!" });
note($stdout);

# One test per file; on failure its part of regression.diffs.
my $diffs = -f "$outdir/regression.diffs" ? slurp_file("$outdir/regression.diffs") : '';
for my $t (@tests)
{
	my ($result) = $stdout =~ /^(?:test\s+)?\Q$t\E\s+\.\.\.\s+(ok|FAILED|failed)\b/m;
	ok(defined $result && $result eq 'ok', "pg_regress $t") or do
	{
		diag("pg_regress $t: " . ($result // 'not run') . ($stderr ne '' ? "\n$stderr" : ''));
		my ($d) = $diffs =~ m{^(diff [^\n]*/\Q$t\E\.out\n.*?)(?=^diff |\z)}ms;
		diag($d) if $d;
	};
}

# Whatever the calls did, the rows are in the shards: no shell holds one.
my $shell_sql = q{
	SELECT coalesce(string_agg(c.relname || '=' || pg_relation_size(c.oid), ', '), 'empty')
	  FROM pg_class c WHERE c.relnamespace = 'tgt_profile'::regnamespace
	   AND c.relkind IN ('r', 'p') AND pg_relation_size(c.oid) > 0};
for my $n ($coord, @workers)
{
	is($n->safe_psql($db, $shell_sql), 'empty', 'after the scenarios, the shells on ' . $n->name . ' hold no rows');
}

done_testing();
