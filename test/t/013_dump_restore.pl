# pg_dump and restore round trip: a database with clients, changed settings,
# approvers of both levels, tokens (active, in grace, revoked, expired),
# profiles, batches with rejects and an audit log is dumped (custom and plain
# format) and restored into fresh databases (pg_restore, psql -f).  Every
# table, sequence, policy, grant and trigger is equal afterwards, the tokens
# still verify, and the restored rights work.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TgtProfileTest;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

sub as
{
	my ($role, $db, $sql) = @_;
	return $node->safe_psql($db, $sql, extra_params => [ '-U', $role ]);
}

# --- fill the source database ---------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE ROLE appr_a LOGIN IN ROLE tgt_profile_approver;
	CREATE ROLE appr_b LOGIN IN ROLE tgt_profile_approver;
	CREATE ROLE cadmin_a LOGIN IN ROLE tgt_profile_approver;
	CREATE ROLE backend LOGIN IN ROLE tgt_profile_api;
	CREATE ROLE ops LOGIN IN ROLE tgt_profile_admin;
});
as('ops', 'src', q{
	SELECT tgt_profile.create_client('alpha', require_auth => true);
	SELECT tgt_profile.create_client('beta');
	SELECT tgt_profile.create_client('gamma', true);
	SELECT tgt_profile.grant_approver('alpha', 'appr_a');
	SELECT tgt_profile.grant_approver('alpha', 'cadmin_a', 'admin');
	SELECT tgt_profile.grant_approver('beta', 'appr_b');
	SELECT tgt_profile.grant_approver('gamma', 'appr_b');
	UPDATE tgt_profile.settings SET max_token_ttl = '2 years', daily_row_limit = 100000 WHERE client = 'beta';
});
# a client admin grants an approver of its own client
as('cadmin_a', 'src', q{SELECT tgt_profile.grant_approver('alpha', 'appr_b')});
as('appr_a', 'src', q{
	UPDATE tgt_profile.settings SET token_ttl = '30 days', profile_lifetime = '7 days' WHERE client = 'alpha';
});
as('appr_b', 'src', q{
	SELECT tgt_profile.set_require_auth('beta', true);
	SELECT tgt_profile.set_require_auth('beta', false);
});

# tokens: alpha active + one in grace; beta revoked + active; gamma expired
my $a1 = new_token($node, 'src', 'alpha', undef, extra_params => [ '-U', 'appr_a' ]);
my $a2 = new_token($node, 'src', 'alpha', "grace => '1 hour'", extra_params => [ '-U', 'appr_a' ]);
my $b1 = new_token($node, 'src', 'beta', "'400 days'", extra_params => [ '-U', 'appr_b' ]);
as('appr_b', 'src', q{SELECT tgt_profile.revoke_tokens('beta')});
my $b2 = new_token($node, 'src', 'beta', undef, extra_params => [ '-U', 'appr_b' ]);
my $g1 = new_token($node, 'src', 'gamma', "'1 second'", extra_params => [ '-U', 'appr_b' ]);
my $g2 = new_token($node, 'src', 'gamma', "'1 day', '1 second'", extra_params => [ '-U', 'appr_b' ]);
sleep 2;    # g1 expires; g2 stays

# profiles and batches, as the API caller
my $auth = "Bearer $a2";
as('backend', 'src', qq{
	SELECT tgt_profile.upsert_profile('alpha', '{"tier": "gold", "n": 1, "vip": true}', 'v1', 'crm-1', "authorization" => '$auth');
	SELECT tgt_profile.upsert_profile('alpha', '{"tier": null, "n": 2}', 'v1', "authorization" => '$auth');
	SELECT tgt_profile.upsert_profile('alpha', '{"x": "y"}', third_party_id => 'crm-2', "authorization" => '$auth');
	SELECT tgt_profile.upsert_profile('alpha', '{"dev": 1}', 'd1', "authorization" => '$auth');
	SELECT tgt_profile.upsert_profile('alpha', '{}', 'd1', 'crm-2', "authorization" => '$auth', merge => true);
	SELECT tgt_profile.upsert_profile('alpha', '{}', 'gone', "authorization" => '$auth');
	SELECT tgt_profile.delete_profile('alpha', 'gone', "authorization" => '$auth');
	SELECT tgt_profile.upsert_profile('beta', '{"lang": "fr"}', 'b1');
	SELECT batch_id FROM tgt_profile.bulk_update('alpha',
		E'{"pcId": "v1", "tier": "silver"}\n{"pcId": "v2", "nested": {"a": 1}}\n{"thirdPartyId": "crm-3", "z": 3}\n{"pcId": "", "a": 1}\n',
		"authorization" => '$auth');
	SELECT batch_id FROM tgt_profile.bulk_update('beta', E'batch=pcId,lang,n\nb1,de,1\nb2,en\nb3,es,1,extra\nb4,bad%zz,1\n');
});
my $bad_batch = as('ops', 'src',
	q{SELECT batch_id FROM tgt_profile.batches WHERE client = 'alpha' AND rows_rejected > 0});
ok($bad_batch =~ /^\d+$/, 'the source has a batch with rejected rows');
cmp_ok(as('ops', 'src', q{SELECT count(*) FROM tgt_profile.batch_rejects}), '>=', 2,
	'the source has batch rejects');
is(as('ops', 'src', q{SELECT string_agg(client || ':' || state, ',' ORDER BY client, token_id) FROM tgt_profile.tokens}),
	'alpha:grace,alpha:active,beta:revoked,beta:active,gamma:expired,gamma:active',
	'the source has tokens active, in grace, revoked and expired');

# --- dump and restore ---------------------------------------------------
my $dumpdir = $node->basedir;
command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-Fc', '-f', "$dumpdir/src.dump" ],
	'pg_dump -Fc');
command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', "$dumpdir/src.sql" ],
	'pg_dump plain');
$node->safe_psql('postgres', 'CREATE DATABASE restored; CREATE DATABASE plain');
command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), "$dumpdir/src.dump" ],
	'pg_restore into a fresh database');
command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('plain'), '-f', "$dumpdir/src.sql" ],
	'psql -f of the plain dump into a fresh database');

my $dump_text = slurp_file("$dumpdir/src.sql");
for my $t ($a1, $a2, $b1, $b2, $g1, $g2)
{
	unlike($dump_text, qr/\Q@{[substr($t, 9)]}\E/, 'the dump holds no token text (' . substr($t, 0, 9) . ')');
}

# --- compare -------------------------------------------------------------
my $ns = q{'tgt_profile'::regnamespace};
my %queries = (
	extension => q{SELECT extname, extversion, extnamespace::regnamespace, extrelocatable,
		(SELECT count(*) FROM pg_depend d WHERE d.refobjid = e.oid AND d.deptype = 'e')
		FROM pg_extension e WHERE extname IN ('tgt_profile', 'pgcrypto') ORDER BY 1},
	schema => q{SELECT nspname, nspowner::regrole, nspacl FROM pg_namespace WHERE nspname = 'tgt_profile'},
	relations => qq{SELECT relname, relkind, relowner::regrole, relacl, relrowsecurity, relforcerowsecurity, reloptions
		FROM pg_class WHERE relnamespace = $ns ORDER BY relname},
	column_acls => qq{SELECT c.relname, a.attname, a.attacl FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		WHERE c.relnamespace = $ns AND a.attacl IS NOT NULL ORDER BY 1, 2},
	functions => qq{SELECT p.oid::regprocedure, proowner::regrole, proacl, prosecdef, proconfig, provolatile, proisstrict
		FROM pg_proc p WHERE pronamespace = $ns ORDER BY 1::text},
	init_privs => qq{SELECT pg_describe_object(classoid, objoid, objsubid), privtype, initprivs FROM pg_init_privs
		WHERE (classoid = 'pg_class'::regclass AND objoid IN (SELECT oid FROM pg_class WHERE relnamespace = $ns))
		   OR (classoid = 'pg_proc'::regclass AND objoid IN (SELECT oid FROM pg_proc WHERE pronamespace = $ns))
		   OR (classoid = 'pg_namespace'::regclass AND objoid = $ns) ORDER BY 1, 2},
	policies => q{SELECT tablename, policyname, permissive, roles, cmd, qual, with_check FROM pg_policies
		WHERE schemaname = 'tgt_profile' ORDER BY 1, 2},
	constraints => qq{SELECT conrelid::regclass, conname, pg_get_constraintdef(oid) FROM pg_constraint
		WHERE connamespace = $ns ORDER BY 1::text, 2},
	indexes => q{SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'tgt_profile' ORDER BY 1},
	triggers => qq{SELECT tgrelid::regclass, tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger
		WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = $ns) ORDER BY 1::text, 2},
	sequences => q{SELECT 'token_id_seq', last_value, is_called FROM tgt_profile.token_id_seq
		UNION ALL SELECT 'audit_id_seq', last_value, is_called FROM tgt_profile.audit_id_seq
		UNION ALL SELECT 'batch_id_seq', last_value, is_called FROM tgt_profile.batch_id_seq},
	tokens_view => q{SELECT t::text FROM tgt_profile.tokens t ORDER BY client, token_id},
	role_grants => q{SELECT r.rolname, m.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid
		JOIN pg_roles m ON m.oid = a.member WHERE r.rolname LIKE 'tgt_profile%' ORDER BY 1, 2},
);
# every table of the schema, whole rows (token hashes included)
my @tables = split /\n/, $node->safe_psql('src',
	qq{SELECT relname FROM pg_class WHERE relnamespace = $ns AND relkind IN ('r', 'p') ORDER BY 1});
cmp_ok(scalar(@tables), '>=', 7, 'the schema has its tables: ' . join(', ', @tables));
$queries{"table $_"} = "SELECT t::text FROM tgt_profile.$_ t ORDER BY 1" for @tables;
# the same through row-level security, as each kind of role
for my $role (qw(appr_a appr_b cadmin_a ops))
{
	$queries{"rls $role"} = [ $role, q{SELECT 'settings', client FROM tgt_profile.settings
		UNION ALL SELECT 'approvers', client || '/' || member FROM tgt_profile.approvers
		UNION ALL SELECT 'tokens', client || '/' || token_id FROM tgt_profile.tokens
		UNION ALL SELECT 'audit', client || '/' || id FROM tgt_profile.audit_log
		UNION ALL SELECT 'profiles', client || '/' || tnt_id FROM tgt_profile.profiles
		UNION ALL SELECT 'batches', client || '/' || batch_id FROM tgt_profile.batches
		UNION ALL SELECT 'rejects', client || '/' || batch_id || '/' || row_number FROM tgt_profile.batch_rejects
		ORDER BY 1, 2} ];
}
# what the API returns
$queries{'api get_profile'} = [ 'backend', qq{SELECT tgt_profile.get_profile('alpha', 'v1', "authorization" => '$auth'),
	tgt_profile.get_profile('alpha', third_party_id => 'crm-2', "authorization" => '$auth'),
	tgt_profile.get_profile('alpha', 'gone', "authorization" => '$auth'),
	tgt_profile.get_profile('alpha', 'd1', "authorization" => '$auth'),
	tgt_profile.get_profile('beta', 'b1')} ];
my $batch_list = as('ops', 'src', q{SELECT string_agg(format('(%L, %s)', client, batch_id), ', ') FROM tgt_profile.batches});
$queries{'api batch_status'} = [ 'backend', qq{SELECT tgt_profile.batch_status(client, batch_id,
	CASE client WHEN 'alpha' THEN '$auth' END) FROM (VALUES $batch_list) v(client, batch_id) ORDER BY 1::text} ];
$queries{'api verify'} = [ 'backend', qq{SELECT tgt_profile.verify_token('alpha', '$a1'), tgt_profile.verify_token('alpha', '$a2'),
	tgt_profile.verify_token('beta', '$b1'), tgt_profile.verify_token('beta', '$b2'),
	tgt_profile.verify_token('gamma', '$g1'), tgt_profile.verify_token('gamma', '$g2'), tgt_profile.verify_token('beta', '$a2')} ];

# run_all($db): every query, one psql call per role; returns name => output
sub run_all
{
	my ($db) = @_;
	my (%by_role, %result);
	for my $name (sort keys %queries)
	{
		my ($role, $sql) = ref $queries{$name} ? @{ $queries{$name} } : ('postgres', $queries{$name});
		$by_role{$role} .= "\\echo '#### $name'\n$sql;\n";
	}
	for my $role (sort keys %by_role)
	{
		my $out = as($role, $db, $by_role{$role});
		for my $part (split /^#### /m, $out)
		{
			next if $part eq '';
			my ($name, $text) = $part =~ /^([^\n]*)\n?(.*)$/s;
			$text =~ s/\n$//;
			$result{$name} = $text;
		}
	}
	return %result;
}

my %want = run_all('src');
for my $name (sort keys %queries)
{
	# (a partition of profiles may hold no client of ours)
	next if $name =~ /^table profiles_\d+$/;
	isnt($want{$name} // '', '', "source: $name is not empty");
}
is($want{'api verify'}, 't|t|f|t|f|t|f', 'source: tokens verify as expected');

for my $db (qw(restored plain))
{
	my %got = run_all($db);
	for my $name (sort keys %queries)
	{
		is($got{$name}, $want{$name}, "$db: $name equal to the source");
	}

	# the restored database works: tokens authorize, rights hold, ids go on
	is(as('backend', $db, "SELECT 'ok' FROM tgt_profile.authorize('alpha', 'Bearer $a1')"), 'ok',
		"$db: the token in grace still authorizes");
	my ($out, $state) = psql_state($node, $db, "SELECT tgt_profile.get_profile('gamma', 'x', \"authorization\" => 'Bearer $g1')",
		extra_params => [ '-U', 'backend' ]);
	is($state, '28P01', "$db: the expired token is still refused");
	($out, $state) = psql_state($node, $db, q{SELECT * FROM tgt_profile.profiles}, extra_params => [ '-U', 'backend' ]);
	is($state, '42501', "$db: the API caller still cannot read the tables");
	($out, $state) = psql_state($node, $db, q{SELECT tgt_profile.generate_token('beta')}, extra_params => [ '-U', 'appr_a' ]);
	is($state, '42501', "$db: an approver of another client is still refused");
	($out, $state) = psql_state($node, $db, q{UPDATE tgt_profile.settings SET daily_row_limit = 1 WHERE client = 'alpha'},
		extra_params => [ '-U', 'appr_a' ]);
	is($state, '42501', "$db: an approver still cannot change a limit");

	my $max_id = as('ops', $db, q{SELECT max(token_id) FROM tgt_profile.token_store});
	my $a3 = new_token($node, $db, 'alpha', undef, extra_params => [ '-U', 'appr_a' ]);
	cmp_ok(as('ops', $db, "SELECT token_id FROM tgt_profile.token_store WHERE hint = '" . substr($a3, 0, 9) . "'"),
		'>', $max_id, "$db: a new token gets a fresh id (sequence restored)");
	is(as('backend', $db, "SELECT tgt_profile.verify_token('alpha', '$a2') || '/' || tgt_profile.verify_token('alpha', '$a3')"),
		'false/true', "$db: regeneration after restore replaces the token");
	is(as('backend', $db, qq{SELECT status FROM tgt_profile.upsert_profile('alpha', '{"n": 3}', 'v1', "authorization" => 'Bearer $a3')}),
		'updated', "$db: the API works after restore");
	my $audit = as('ops', $db, q{SELECT count(*) FROM tgt_profile.audit_log});
	as('appr_a', $db, q{UPDATE tgt_profile.settings SET token_ttl = '20 days' WHERE client = 'alpha'});
	is(as('ops', $db, q{SELECT count(*) FROM tgt_profile.audit_log}), $audit + 1,
		"$db: a settings change is still audited");
}

$node->stop;
done_testing();
