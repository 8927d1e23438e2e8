# A query cancel reaches a bulk update inside one long record: one NDJSON
# line of 4.9 million members (about 64 MB), with max_profile_bytes raised
# so that the record is read and merged in full rather than refused by its
# size.  pg_cancel_backend() from another session ends the batch with
# 57014 within a few seconds (the readers call CHECK_FOR_INTERRUPTS through
# their interrupt hook; bulk.c between and inside records), and nothing of
# it is applied.  The bound is generous on purpose: this is no timing test.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $node = PostgreSQL::Test::Cluster->new('bulk_cancel');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tgt_profile CASCADE;
	SELECT tgt_profile.create_client('cancel');
	CREATE TABLE big AS
	SELECT '{"pcId":"big",' || string_agg(format('"m%s":1', i), ',') || '}' AS b
	  FROM generate_series(1, 4900000) i;
});
is($node->safe_psql('postgres', q{SELECT position(E'\n' IN b) = 0 AND length(b) > 50000000 FROM big}),
	't', 'the batch is one line of more than 50 MB');

my $bg = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
$bg->query_until(qr/started/, q{
	\set VERBOSITY verbose
	SET tgt_profile.max_batch_bytes = '100MB';
	SET tgt_profile.max_profile_bytes = '256MB';
	\echo started
	SELECT * FROM tgt_profile.bulk_update('cancel', (SELECT b FROM big));
});

# Cancel once the batch has run for a second (it takes several).
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT EXISTS (SELECT 1 FROM pg_stat_activity
						WHERE pid = $pid AND state = 'active'
						  AND query LIKE '%bulk_update(''cancel''%'
						  AND now() - query_start > interval '1 second')}),
	'the batch is running');
my $t0 = time;
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't', 'cancel sent');

my $state = 'active';
while ($state eq 'active' && time - $t0 < 60)
{
	sleep(0.05);
	$state = $node->safe_psql('postgres', "SELECT state FROM pg_stat_activity WHERE pid = $pid");
}
my $took = time - $t0;
note(sprintf('the batch ended %.2f s after the cancel', $took));
cmp_ok($took, '<', 5, 'the batch ends within 5 s of the cancel');

$bg->query('SELECT 1');
like($bg->{stderr}, qr/ERROR:  57014: canceling statement due to user request/,
	'the batch ends with 57014');
$bg->quit;

is( $node->safe_psql(
		'postgres', q{
		SELECT (SELECT count(*) FROM tgt_profile.profiles WHERE client = 'cancel') || ' '
			|| (SELECT count(*) FROM tgt_profile.batches WHERE client = 'cancel')}),
	'0 0',
	'nothing of the cancelled batch is applied');

# A batch after the cancel applies.
is( $node->safe_psql(
		'postgres',
		q{SELECT rows_created FROM tgt_profile.bulk_update('cancel', '{"pcId":"after","n":1}')}),
	'1',
	'a batch after the cancel applies');

$node->stop;
done_testing();
