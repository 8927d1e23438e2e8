# Load: the pgbench mix of TESTING.md (verify_token 90%, upsert_profile 9%,
# generate_token 1%) at 32 clients for 60 seconds, then
#   - no failed transaction, no aborted client, no ERROR in the server log;
#   - the token the callers present verified on every call, although the
#     token was regenerated hundreds of times meanwhile (grace '1 hour');
#   - memory is flat: a long-lived session that loops the same calls (and
#     the error path, a bulk update, a regeneration) keeps the same total of
#     its memory contexts and the same private RSS from its warm-up to the
#     end; and no pgbench backend's private RSS grows during the run.
#
# LOAD_SECONDS and LOAD_CLIENTS override the duration and the client count.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seconds = $ENV{LOAD_SECONDS} // 60;
my $clients = $ENV{LOAD_CLIENTS} // 32;
my $scripts = File::Spec->rel2abs(dirname(__FILE__) . '/../load');

# Growth allowed between the warm-up and the end.  A leak of even a few
# hundred bytes per call grows by far more: the session makes ~10^4 calls a
# round and each pgbench backend ~10^5 calls between its two samples.
my $ctx_slack = 1024 * 1024;    # memory contexts: 1 MB (or 10%)
my $rss_slack = 4 * 1024;       # private RSS, kB: 4 MB (malloc, catcache)

my $node = PostgreSQL::Test::Cluster->new('load');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_connections = 60
shared_buffers = 128MB
fsync = off
synchronous_commit = off
log_min_messages = warning
log_min_error_statement = error
});
$node->start;

# An API caller that logs in, and an approver role it may take (SET ROLE)
# for the regenerating transactions.  Client 'load' requires auth; 'load2'
# is regenerated (grace 0) by the memory session only.
$node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE ROLE load_caller LOGIN IN ROLE tgt_profile_api;
	CREATE ROLE load_approver NOLOGIN IN ROLE tgt_profile_approver;
	GRANT load_approver TO load_caller;
	GRANT pg_read_all_stats TO load_caller;   -- pg_backend_memory_contexts
	SELECT tgt_profile.create_client('load', require_auth => true);
	SELECT tgt_profile.create_client('load2');
	SELECT tgt_profile.grant_approver('load', 'load_approver');
	SELECT tgt_profile.grant_approver('load2', 'load_approver');
	INSERT INTO tgt_profile.profiles (client, tnt_id, attributes, created_at, updated_at, last_seen_at)
	SELECT 'load', 'load-' || i, jsonb_build_object('attr', 0), now(), now(), now()
	  FROM generate_series(1, 10000) i;
	ANALYZE;
});
# The first token is revoked at once by the second (grace 0): the memory
# session alternates the two, which also defeats verify_token's memo.
my $old = $node->safe_psql('postgres',
	q{SET ROLE load_approver; SELECT token FROM tgt_profile.generate_token('load')});
my $tok = $node->safe_psql('postgres',
	q{SET ROLE load_approver; SELECT token FROM tgt_profile.generate_token('load')});
like($tok, qr/^tgtp_[A-Za-z0-9_-]+$/, 'a token for the callers');
is($node->safe_psql('postgres',
		qq{SELECT tgt_profile.verify_token('load', '$tok')::text || tgt_profile.verify_token('load', '$old')::text}),
	'truefalse', 'the callers\' token verifies, the first one is revoked');

# ---------------------------------------------------------------------------
# The long-lived session whose memory is measured.

# A plain psql over pipes (BackgroundPsql would note every query in the
# test output: thousands of lines).  query() returns the output of one batch
# of statements and dies on any error.
my ($mem_in, $mem_out, $mem_err) = ('', '', '');
my $mem_timer = IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default);
my $mem = IPC::Run::start(
	[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-v', "tok=$tok", '-v', "old=$old",
	  '-d', $node->connstr('postgres') . ' user=load_caller', '-f', '-' ],
	'<', \$mem_in, '>', \$mem_out, '2>', \$mem_err, $mem_timer);
my $mem_n = 0;

sub query
{
	my ($sql) = @_;
	my $sep = 'LOAD_SEPARATOR_' . ++$mem_n;
	$mem_timer->start($PostgreSQL::Test::Utils::timeout_default);
	$mem_in .= "$sql\n;\n\\echo $sep\n";
	$mem->pump until $mem_out =~ /^$sep$/m || $mem_err ne '' || $mem_timer->is_expired;
	die "memory session: $mem_err\nin: $sql" if $mem_err ne '';
	die "memory session: timed out in: $sql" if $mem_timer->is_expired;
	(my $got = $mem_out) =~ s/\n?$sep\n//;
	$mem_out = '';
	return $got;
}

my $mem_pid = query('SELECT pg_backend_pid()');
query(q{SELECT set_config('load.old', :'old', false)});
query(q{SELECT set_config('load.auth', 'Bearer ' || :'tok', false)});

# One round: ~10^4 calls of every kind the mix makes, plus the error path
# (28P01 raised and caught 200 times), a bulk update through the JSON
# readers, get_profile, and a regeneration of 'load2' as the approver.
my @round = (
	[ q{SELECT count(*) FILTER (WHERE tgt_profile.verify_token('load', CASE WHEN i % 2 = 0 THEN :'tok' ELSE :'old' END))
	      FROM generate_series(1, 8000) i}, '4000' ],
	[ q{SELECT count(*) FROM generate_series(1, 500) i,
	      LATERAL tgt_profile.upsert_profile('load', jsonb_build_object('mem', i, 'r', random()),
	                                         'mem-' || (i % 100), NULL, current_setting('load.auth')) u},
	  '500' ],
	[ q{SELECT count(*) FROM generate_series(1, 100) i
	     WHERE tgt_profile.get_profile('load', 'mem-' || i % 100, NULL, current_setting('load.auth')) IS NOT NULL},
	  '100' ],
	[ q{DO $$
	    DECLARE refused int := 0;
	    BEGIN
	      FOR i IN 1..200 LOOP
	        BEGIN
	          PERFORM tgt_profile.upsert_profile('load', '{"x": 1}', 'mem-1', NULL,
	                                             'Bearer ' || current_setting('load.old'));
	        EXCEPTION WHEN invalid_password THEN refused := refused + 1;
	        END;
	      END LOOP;
	      IF refused <> 200 THEN RAISE EXCEPTION 'only % of 200 refused', refused; END IF;
	    END $$; SELECT 'refused'}, 'refused' ],
	[ q{SELECT rows_total || '/' || rows_rejected FROM tgt_profile.bulk_update('load',
	      (SELECT string_agg(CASE WHEN i = 25 THEN '{"pcId": "mem-x", "bad": {"nested": 1}}'
	                              ELSE format('{"pcId": "mem-%s", "b": %s}', i, i) END, E'\n')
	         FROM generate_series(1, 50) i),
	      current_setting('load.auth'))}, '50/1' ],
	[ q{SET ROLE load_approver; SELECT count(*) FROM tgt_profile.generate_token('load2'); RESET ROLE}, '1' ],
);

sub mem_round
{
	for my $q (@round)
	{
		my ($sql, $want) = @$q;
		my $got = query($sql);
		die "memory session: got '$got', want '$want' for: $sql" unless $got eq $want;
	}
}

sub ctx_total
{
	return query(
		'SELECT sum(total_bytes) FROM pg_catalog.pg_backend_memory_contexts');
}

# Private (anonymous, not shared) resident memory of a backend, in kB.
sub rss_anon
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or return undef;
	while (my $line = <$fh>)
	{
		return $1 if $line =~ /^RssAnon:\s+(\d+)\s+kB/;
	}
	return undef;
}

mem_round() for 1 .. 3;    # warm-up: caches, plans, first allocations
my $ctx_before = ctx_total();
my $rss_before = rss_anon($mem_pid);

# ---------------------------------------------------------------------------
# The pgbench mix.

my ($out, $err) = map { "$PostgreSQL::Test::Utils::tmp_check/pgbench_load.$_" } qw(out err);
my @pgbench = (
	'pgbench', '-n', '-M', 'prepared',
	'-h', $node->host, '-p', $node->port, '-U', 'load_caller',
	'-c', $clients, '-j', 2, '-T', $seconds, '-P', 10,
	'--failures-detailed',
	'-f', "$scripts/verify.pgbench\@90",
	'-f', "$scripts/upsert.pgbench\@9",
	'-f', "$scripts/regenerate.pgbench\@1",
	'-D', 'client=load', '-D', "token=$tok", '-D', "auth=Bearer $tok",
	'postgres');
my $log_offset = -s $node->logfile;
my $t0 = time;
my $bench = do {
	local $ENV{PGAPPNAME} = 'load_pgbench';    # the TAP modules set the script's name
	IPC::Run::start(\@pgbench, '<', \undef, '>', $out, '2>', $err);
};

# Rounds in the session while pgbench runs; the pgbench backends' private
# RSS sampled once they are warm (a quarter in) and near the end.
my (%rss_early, %rss_late, $rounds);
my $backends = q{SELECT pid FROM pg_stat_activity WHERE application_name = 'load_pgbench' AND backend_type = 'client backend'};
while (time - $t0 < $seconds - 3)
{
	mem_round();
	$rounds++;
	my $el = time - $t0;
	if (!%rss_early && $el >= $seconds / 4)
	{
		$rss_early{$_} = rss_anon($_) for split /\n/, $node->safe_psql('postgres', $backends);
	}
	if (!%rss_late && $el >= $seconds - 10)
	{
		$rss_late{$_} = rss_anon($_) for split /\n/, $node->safe_psql('postgres', $backends);
	}
}
$bench->finish;
my $rc = $?;
my $elapsed = time - $t0;

my $ctx_after = ctx_total();
my $rss_after = rss_anon($mem_pid);
$mem_in .= "\\q\n";
$mem->finish;

my $stdout = slurp_file($out);
my $stderr = slurp_file($err);
note "pgbench ($elapsed s):\n$stdout";
note "pgbench stderr:\n$stderr" if $stderr ne '';

is($rc, 0, 'pgbench exited with status 0');
unlike($stderr, qr/aborted|error|fatal/i, 'no client aborted, no error reported by pgbench');
like($stdout, qr/^number of failed transactions: 0 \(/m, 'zero failed transactions');
my ($tx) = $stdout =~ /^number of transactions actually processed: (\d+)/m;
ok(defined $tx && $tx > 0, "transactions processed: " . ($tx // 'none'));

# Per-script counts (pgbench numbers the -f scripts from 1).
my %n;
while ($stdout =~ /^SQL script (\d+): [^\n]*\n - weight: [^\n]*\n - (\d+) transactions/mg)
{
	$n{$1} = $2;
}
ok(($n{1} // 0) > 0 && ($n{2} // 0) > 0 && ($n{3} // 0) > 0,
	sprintf('every script ran: verify %d, upsert %d, regenerate %d',
		$n{1} // 0, $n{2} // 0, $n{3} // 0));

my $log = slurp_file($node->logfile, $log_offset);
my @errors = grep { /\b(ERROR|FATAL|PANIC):/ } split /\n/, $log;
is(scalar(@errors), 0, 'no ERROR in the server log during the run')
  or diag join("\n", @errors[ 0 .. ($#errors < 20 ? $#errors : 19) ]);

# Every regeneration left the callers' token valid and was recorded once.
is($node->safe_psql('postgres', qq{SELECT tgt_profile.verify_token('load', '$tok')}),
	't', 'the callers\' token still verifies after the rotations (grace)');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM tgt_profile.audit_log
	 WHERE client = 'load' AND action = 'generate_token' AND actor = 'load_approver'}),
	($n{3} // 0) + 2, 'one audited regeneration per regenerate transaction (+2 at setup)');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM tgt_profile.tokens WHERE client = 'load' AND state = 'active'}),
	'1', 'exactly one active token for the client afterwards');

# Memory.
note sprintf('memory session: %d rounds; contexts %d -> %d bytes; RssAnon %d -> %d kB',
	$rounds, $ctx_before, $ctx_after, $rss_before, $rss_after);
my $ctx_allowed = $ctx_before / 10 > $ctx_slack ? $ctx_before / 10 : $ctx_slack;
cmp_ok($ctx_after - $ctx_before, '<=', $ctx_allowed,
	"session memory contexts flat ($ctx_before -> $ctx_after bytes)");
cmp_ok($rss_after - $rss_before, '<=', $rss_slack,
	"session private RSS flat ($rss_before -> $rss_after kB)");

my @both = grep { defined $rss_early{$_} && defined $rss_late{$_} } keys %rss_late;
my ($worst_pid, $worst) = (undef, -1e9);
for (@both)
{
	my $d = $rss_late{$_} - $rss_early{$_};
	($worst_pid, $worst) = ($_, $d) if $d > $worst;
}
note sprintf('pgbench backends sampled twice: %d; largest RssAnon growth %d kB (pid %s: %d -> %d kB)',
	scalar(@both), $worst, $worst_pid // '-',
	$worst_pid ? ($rss_early{$worst_pid}, $rss_late{$worst_pid}) : (0, 0));
ok(@both >= $clients / 2, 'pgbench backends sampled at a quarter and near the end: ' . scalar(@both));
cmp_ok($worst, '<=', $rss_slack, 'no pgbench backend\'s private RSS grew');

$node->stop;
done_testing();
