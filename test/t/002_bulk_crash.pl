# A crash (stop('immediate')) in the middle of a 500,000-record bulk update:
# after crash recovery the committed state is whole, nothing of the
# interrupted batch is visible (no profile, no batch row, no reject), the
# indexes pass amcheck, and the next batches work, also on the same keys.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('bulk_crash');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE EXTENSION amcheck;
	SELECT tgt_profile.create_client('crash');
});

# Committed before the crash: a small batch, with one rejected row.
is( $node->safe_psql(
		'postgres',
		q{SELECT rows_total || '/' || rows_created || '/' || rows_rejected
		    FROM tgt_profile.bulk_update('crash', E'batch=pcId,tier\npre-1,gold\npre-2,silver\npre-3,%zz\n')}),
	'3/2/1',
	'a batch committed before the crash');

# The big batch: 500,000 NDJSON records (every 10,000th a bad line, so that
# rejects are written too), about 20 MB, kept in a table so that building it
# is not part of the statement that crashes.
$node->safe_psql('postgres', q{
	CREATE TABLE crash_batch AS
	SELECT string_agg(CASE WHEN i % 10000 = 0 THEN 'not json'
						   ELSE format('{"pcId": "crash-%s", "n": %s, "tier": "gold"}', i, i) END,
					  E'\n' ORDER BY i) AS b
	  FROM generate_series(1, 500000) i;
});
# the heap size of profiles (of all its partitions, when it is partitioned)
# (pg_partition_tree() has no row for a plain table)
my $profiles_size = q{(SELECT COALESCE(sum(pg_relation_size(relid)), pg_relation_size('tgt_profile.profiles'))
						 FROM pg_partition_tree('tgt_profile.profiles'))};
my $size_before = $node->safe_psql('postgres', "SELECT $profiles_size");

my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/started/, q{
	SET tgt_profile.max_batch_bytes = '100MB';
	\echo started
	SELECT * FROM tgt_profile.bulk_update('crash', (SELECT b FROM crash_batch));
});

# Wait until the batch has run for a second and has written profiles (the
# heap grows with its uncommitted rows), then crash.
ok( $node->poll_query_until(
		'postgres', qq{
		SELECT EXISTS (SELECT 1 FROM pg_stat_activity
						WHERE state = 'active' AND query LIKE '%bulk_update(''crash''%'
						  AND pid <> pg_backend_pid() AND now() - query_start > interval '1 second')
		   AND $profiles_size > $size_before + 1024 * 1024}),
	'the big batch is running and writing');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM pg_stat_activity
		   WHERE state = 'active' AND query LIKE '%bulk_update(''crash''%' AND pid <> pg_backend_pid()}),
	'1',
	'the big batch is still running when the server crashes');
$node->stop('immediate');
# psql lost its server: reap it
eval { $bg->quit; };

$node->start;

is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM tgt_profile.profiles WHERE client = 'crash' AND tnt_id LIKE 'crash-%'}),
	'0',
	'no profile of the interrupted batch');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) || ' batch, ' || sum(rows_total) || ' rows' FROM tgt_profile.batches WHERE client = 'crash'}),
	'1 batch, 3 rows',
	'no batch row of the interrupted batch');
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(row_number || ':' || key, ',') FROM tgt_profile.batch_rejects WHERE client = 'crash'}),
	'3:pre-3',
	'no reject of the interrupted batch');
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(tnt_id || '=' || (attributes->>'tier'), ',' ORDER BY tnt_id)
		    FROM tgt_profile.profiles WHERE client = 'crash'}),
	'pre-1=gold,pre-2=silver',
	'the committed batch is whole');

# amcheck: every index of the extension's tables agrees with its heap, and
# the heaps are sound.
my @indexes = split /\n/, $node->safe_psql('postgres', q{
	SELECT i.indexrelid::regclass
	  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am a ON a.oid = ic.relam
	 WHERE ic.relnamespace = 'tgt_profile'::regnamespace AND ic.relkind = 'i' AND a.amname = 'btree'
	 ORDER BY 1
});
ok(scalar(grep { /^tgt_profile\.profiles(_\d+)?_pkey$/ } @indexes), 'btree indexes: ' . join(', ', @indexes));
for my $index (@indexes)
{
	my ($rc, $out, $err) = $node->psql('postgres', qq{SELECT bt_index_check('$index'::regclass, true)});
	ok($rc == 0 && $err eq '', "bt_index_check(heapallindexed) passes on $index") or diag($err);
}
my @heaps = split /\n/, $node->safe_psql('postgres', q{
	SELECT relid::regclass FROM pg_partition_tree('tgt_profile.profiles') WHERE isleaf
	UNION ALL SELECT c.oid::regclass FROM pg_class c
	 WHERE c.oid = 'tgt_profile.profiles'::regclass AND c.relkind = 'r'
	UNION ALL SELECT 'tgt_profile.batches'::regclass UNION ALL SELECT 'tgt_profile.batch_rejects'::regclass
});
for my $table (map { s/^tgt_profile\.//r } @heaps)
{
	is($node->safe_psql('postgres', qq{SELECT count(*) FROM verify_heapam('tgt_profile.$table')}),
		'0', "verify_heapam finds no corruption in $table");
}

# Batches work afterwards, also on the keys of the interrupted batch.
is( $node->safe_psql(
		'postgres', q{
		SELECT rows_total || '/' || rows_created || '/' || rows_updated
		  FROM tgt_profile.bulk_update('crash', (
				SELECT string_agg(format('{"pcId": "crash-%s", "n": %s}', i, i), E'\n')
				  FROM generate_series(1, 20000) i) || E'\n{"pcId": "pre-1", "tier": "platinum"}')}),
	'20001/20000/1',
	'a batch after the crash applies');
is( $node->safe_psql(
		'postgres', q{
		SELECT count(*) || ',' || max(attributes->>'n') FILTER (WHERE tnt_id = 'crash-20000')
		  FROM tgt_profile.profiles WHERE client = 'crash' AND tnt_id LIKE 'crash-%'}),
	'20000,20000',
	'its profiles are there');
is( $node->safe_psql(
		'postgres', q{
		SELECT s->>'batchSize' || '/' || (s->>'created')
		  FROM tgt_profile.batch_status('crash',
				(SELECT max(batch_id) FROM tgt_profile.batches WHERE client = 'crash')) s}),
	'20001/20000',
	'batch_status reports it');
for my $index (@indexes)
{
	my ($rc, $out, $err) = $node->psql('postgres', qq{SELECT bt_index_check('$index'::regclass, true)});
	ok($rc == 0 && $err eq '', "$index still checks after the new batch") or diag($err);
}

$node->safe_psql('postgres', q{SELECT tgt_profile.drop_client('crash'); DROP TABLE crash_batch;});
$node->stop;
done_testing();
