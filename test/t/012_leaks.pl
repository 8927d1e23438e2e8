# Secrets stay out of logs: with log_statement = all, log_parameter_max_length
# = 0 (the README's advice), log_min_duration_statement = 0,
# log_min_error_statement = error and pg_stat_statements (track = all), calls
# that pass tokens as bind parameters (pgbench -M extended and -M prepared)
# leave no token text in the server log, in pg_stat_statements, in any table
# (pg_dump --data-only), nor in the client-side error messages: successful
# and failing verifications, authorizations and profile calls alike.  The
# extension's failure LOG line carries the 9-character hint only.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TgtProfileTest;

my $node = PostgreSQL::Test::Cluster->new('leaks');
$node->init;
$node->append_conf('postgresql.conf', q{
log_statement = all
log_parameter_max_length = 0
log_parameter_max_length_on_error = 0
log_min_error_statement = error
log_min_duration_statement = 0
log_error_verbosity = verbose
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.track_utility = on
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_stat_statements;
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE ROLE backend LOGIN IN ROLE tgt_profile_api;
	CREATE ROLE appr LOGIN IN ROLE tgt_profile_approver;
	SELECT tgt_profile.create_client('leak', require_auth => true);
	SELECT tgt_profile.create_client('other', require_auth => true);
	SELECT tgt_profile.grant_approver('leak', 'appr');
	SELECT tgt_profile.grant_approver('other', 'appr');
});
my @as_appr = (extra_params => [ '-U', 'appr' ]);
my $t_old = new_token($node, 'postgres', 'leak', undef, @as_appr);
my $t_cur = new_token($node, 'postgres', 'leak', "grace => '1 hour'", @as_appr);    # t_old in grace
my $o_rev = new_token($node, 'postgres', 'other', undef, @as_appr);
my $o_cur = new_token($node, 'postgres', 'other', undef, @as_appr);                  # o_rev revoked
# one character changed: the checksum fails
my $typo = $t_cur;
substr($typo, 30, 1) = substr($typo, 30, 1) eq 'A' ? 'B' : 'A';
my %tokens = (t_old => $t_old, t_cur => $t_cur, o_rev => $o_rev, o_cur => $o_cur, typo => $typo);

my $tmp = $node->basedir;
my @conn = ('-h', $node->host, '-p', $node->port, '-U', 'backend', '-n', 'postgres');
my %vars = (
	tok => $t_cur,
	tok_old => $t_old,
	typo => $typo,
	other => $o_cur,
	revoked => $o_rev,
	auth => "Bearer $t_cur",
	auth_old => "bearer   $t_old",
	auth_typo => "Bearer $typo",
	auth_other => "Bearer $o_cur",
	auth_revoked => "Bearer $o_rev",
	auth_basic => "Basic $t_cur",
	hdr => qq({"authorization": "Bearer $t_cur"}),
);
my @defs = map { ('-D', "$_=$vars{$_}") } sort keys %vars;

# pgbench($name, $mode, $script, $expect_ok, @more): run a script file, return its output
my $client_output = '';
sub pgbench
{
	my ($name, $mode, $script, $expect_ok, @more) = @_;
	my $file = "$tmp/$name-$mode.sql";
	open my $fh, '>', $file or die "$file: $!";
	print $fh $script;
	close $fh;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ 'pgbench', @conn, '-M', $mode, '-f', $file, @defs, @more ],
		'>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$client_output .= $out . $err;
	if ($expect_ok)
	{
		ok($ok, "pgbench $name -M $mode succeeds") or diag($out . $err);
		like($out, qr/number of failed transactions: 0 /, "pgbench $name -M $mode: no failed transaction");
	}
	else
	{
		ok(!$ok, "pgbench $name -M $mode fails as it should");
	}
	return $err;
}

# --- successful calls, every function that takes a token ----------------
my $good = <<'EOF';
\set n random(1, 5)
SELECT tgt_profile.verify_token('leak', :tok) AS v1 \gset
SELECT tgt_profile.verify_token('leak', :tok_old) AS v2 \gset
SELECT tgt_profile.verify_token('leak', :typo) AS v3 \gset
SELECT tgt_profile.verify_token('leak', :other) AS v4 \gset
SELECT tgt_profile.verify_token('leak', :revoked) AS v5 \gset
SELECT tgt_profile.verify_token('other', :revoked) AS v6 \gset
\if :v1 + :v2 != 2 or :v3 + :v4 + :v5 + :v6 != 0
SELECT 1/0;
\endif
SELECT tgt_profile.authorize('leak', :auth);
SELECT tgt_profile.authorize('leak', :auth_old);
SELECT tnt_id FROM tgt_profile.upsert_profile('leak', '{"a": "b"}', 'p' || CAST(:n AS text), "authorization" => :auth);
SELECT tgt_profile.get_profile('leak', 'p' || CAST(:n AS text), "authorization" => :auth);
SELECT batch_id FROM tgt_profile.bulk_update('leak', E'batch=pcId,a\np1,c\np2,%zz\n', "authorization" => :auth) \gset
SELECT tgt_profile.batch_status('leak', :batch_id, "authorization" => :auth);
SELECT tgt_profile.delete_profile('leak', 'none', "authorization" => :auth);
BEGIN;
SELECT set_config('request.headers', :hdr, true);
SELECT tgt_profile.authorize('leak');
SELECT tgt_profile.get_profile('leak', 'p1');
END;
EOF
# pgbench expressions know numbers: make the booleans 1 and 0
$good =~ s/AS v(\d) \\gset/::int AS v$1 \\gset/g;
for my $mode ('extended', 'prepared')
{
	pgbench('good', $mode, $good, 1, '-c', '2', '-t', '10');
}

# --- failing calls: one pgbench run each (an error ends a pgbench client) --
my %bad = (
	authorize_typo => q{SELECT tgt_profile.authorize('leak', :auth_typo);},
	authorize_other => q{SELECT tgt_profile.authorize('leak', :auth_other);},
	authorize_revoked => q{SELECT tgt_profile.authorize('other', :auth_revoked);},
	authorize_trailing => q{SELECT tgt_profile.authorize('leak', CAST(:auth AS text) || 'x');},
	authorize_basic => q{SELECT tgt_profile.authorize('leak', :auth_basic);},
	upsert_other => q{SELECT tgt_profile.upsert_profile('leak', '{}', 'p1', "authorization" => :auth_other);},
	get_typo => q{SELECT tgt_profile.get_profile('leak', 'p1', "authorization" => :auth_typo);},
	delete_revoked => q{SELECT tgt_profile.delete_profile('other', 'p1', "authorization" => :auth_revoked);},
	bulk_other => q{SELECT tgt_profile.bulk_update('leak', E'batch=pcId,a\np1,c\n', "authorization" => :auth_other);},
	status_typo => q{SELECT tgt_profile.batch_status('leak', 1, "authorization" => :auth_typo);},
	headers_other => qq{BEGIN;\nSELECT set_config('request.headers', replace(:hdr, :tok, :other), true);\nSELECT tgt_profile.authorize('leak');\nEND;},
	upsert_nested => q{SELECT tgt_profile.upsert_profile('leak', '{"a": {"nested": 1}}', 'p1', "authorization" => :auth);},
);
my %expect = (
	authorize_basic => qr/client "leak" requires authentication/,
	upsert_nested => qr/ERROR: .*nested|ERROR: .*(object|scalar)/i,
);
for my $mode ('extended', 'prepared')
{
	for my $name (sort keys %bad)
	{
		my $err = pgbench($name, $mode, $bad{$name} . "\n", 0, '-c', '1', '-t', '1');
		like($err, $expect{$name} // qr/invalid authorization token for client "(leak|other)"/,
			"pgbench $name -M $mode: the expected error");
	}
}

# --- the evidence ---------------------------------------------------------
my $log = slurp_file($node->logfile);
my $pgss = $node->safe_psql('postgres', q{SELECT string_agg(query, E'\n') FROM pg_stat_statements});
my ($dump, $dump_err) = ('', '');
IPC::Run::run([ 'pg_dump', '--data-only', '-d', $node->connstr('postgres') ], '>', \$dump, '2>', \$dump_err)
  or die "pg_dump: $dump_err";
my $all_rows = $node->safe_psql('postgres', q{
	SELECT string_agg(format('%s: %s', c.oid::regclass, row_text), E'\n')
	  FROM pg_class c
	 CROSS JOIN LATERAL query_to_xml(format('SELECT * FROM %s', c.oid::regclass), false, false, '') x(row_text)
	 WHERE c.relkind IN ('r', 'v', 'm') AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)});

# sanity: the evidence is not empty, the calls were logged with their binds hidden
like($log, qr/execute <unnamed>: SELECT tgt_profile\.authorize\('leak', \$1\)/, 'the log has the extended-protocol calls');
like($log, qr/execute P_?\d+: SELECT tgt_profile\.authorize\('leak', \$1\)/, 'the log has the prepared-statement calls');
like($log, qr/duration: [\d.]+ ms/, 'the log has durations');
like($log, qr/tgt_profile: authentication failed for client "leak"/, 'the log has the extension\'s failure line');
like($pgss, qr/tgt_profile\.authorize\(\$\d+, \$\d+\)/, 'pg_stat_statements has the calls, with $1');
like($dump, qr/COPY tgt_profile\.token_store/, 'the data dump has the token store');
like($all_rows, qr/tgt_profile\.token_store/, 'every table was read as text');

# no 10 characters of any token (the hint is 9) anywhere
my %places = (
	'the server log' => $log,
	'pg_stat_statements' => $pgss,
	'the data dump' => $dump,
	'the tables as text' => $all_rows,
	'the client-side messages' => $client_output,
);
for my $place (sort keys %places)
{
	for my $name (sort keys %tokens)
	{
		my $t = $tokens{$name};
		my @found = grep { index($places{$place}, $_) >= 0 } token_windows($t, 10);
		is(scalar(@found), 0, "$place holds no part of token $name beyond its hint")
		  or diag('found: ' . join(', ', @found));
	}
}

# The extension's failure lines: client, role and hint or "malformed", nothing more.
my @fail_lines = ($log =~ /authentication failed for client "[a-z]+"\n.*?DETAIL:[^\n]*/g);
cmp_ok(scalar(@fail_lines), '>=', 2 * 10, 'one failure line (with its detail) per failed authentication');
my $hint_o = substr($o_cur, 0, 9);
my $hint_r = substr($o_rev, 0, 9);
like($log, qr/DETAIL:  Role "backend" presented token \Q$hint_o\E\.\.\., which is revoked, expired or unknown\./,
	'another client\'s token is logged by its hint only');
like($log, qr/DETAIL:  Role "backend" presented token \Q$hint_r\E\.\.\., which is revoked, expired or unknown\./,
	'a revoked token is logged by its hint only');
like($log, qr/DETAIL:  Role "backend" presented a malformed token\./, 'a mistyped token is logged as malformed');
for my $line (@fail_lines)
{
	if ($line !~ /DETAIL:  Role "backend" presented (?:token tgtp_[A-Za-z0-9_-]{4}\.\.\., which is revoked, expired or unknown|a malformed token|no bearer token)\.$/)
	{
		fail("unexpected failure line: $line");
	}
}

$node->stop;
done_testing();
