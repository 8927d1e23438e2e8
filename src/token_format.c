/*-------------------------------------------------------------------------
 *
 * token_format.c
 *	  The text form of a profile authentication token.
 *
 *	  tgtp_ + base64url( 32 random bytes || CRC-32C of them )
 *
 * 36 bytes encode to exactly 48 characters, so a token is always 53
 * characters with no padding.  The prefix lets secret scanners recognise a
 * token; the checksum lets us refuse a mistyped one without a table lookup.
 * The checksum is not a security measure: the 256 random bits are.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"
#include "pg_compat.h"

#include <openssl/evp.h>

#include "common/base64.h"
#include "common/sha2.h"
#include "port/pg_crc32c.h"

#define RAW_LEN		(TP_TOKEN_SECRET_LEN + 4)
#define BODY_LEN	(TP_TOKEN_TEXT_LEN - TP_TOKEN_PREFIX_LEN)

StaticAssertDecl(RAW_LEN % 3 == 0, "token body must need no base64 padding");
StaticAssertDecl(BODY_LEN == RAW_LEN / 3 * 4, "token length mismatch");

static uint32
checksum(const uint8 *secret)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, secret, TP_TOKEN_SECRET_LEN);
	FIN_CRC32C(crc);
	return (uint32) crc;
}

/* base64 -> base64url, in place (and back). */
static void
to_url_alphabet(char *s, int len)
{
	for (int i = 0; i < len; i++)
		s[i] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
}

static void
from_url_alphabet(char *s, int len)
{
	for (int i = 0; i < len; i++)
		s[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
}

/* A new token from the CSPRNG into out (TP_TOKEN_TEXT_LEN + 1 bytes). */
void
tp_token_new(char *out)
{
	uint8		raw[RAW_LEN];
	uint32		crc;
	int			n;

	if (!pg_strong_random(raw, TP_TOKEN_SECRET_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a token")));
	crc = checksum(raw);
	raw[TP_TOKEN_SECRET_LEN + 0] = (uint8) (crc >> 24);
	raw[TP_TOKEN_SECRET_LEN + 1] = (uint8) (crc >> 16);
	raw[TP_TOKEN_SECRET_LEN + 2] = (uint8) (crc >> 8);
	raw[TP_TOKEN_SECRET_LEN + 3] = (uint8) crc;

	memcpy(out, TP_TOKEN_PREFIX, TP_TOKEN_PREFIX_LEN);
	n = tp_b64_encode(raw, RAW_LEN, out + TP_TOKEN_PREFIX_LEN, BODY_LEN);
	explicit_bzero(raw, sizeof(raw));
	if (n != BODY_LEN)
		elog(ERROR, "unexpected token encoding length %d", n);
	to_url_alphabet(out + TP_TOKEN_PREFIX_LEN, BODY_LEN);
	out[TP_TOKEN_TEXT_LEN] = '\0';
}

/*
 * Prefix, length, alphabet and checksum.  Never raises and reads at most
 * TP_TOKEN_TEXT_LEN bytes, whatever is passed.
 */
bool
tp_token_well_formed(const char *token, size_t len)
{
	char		body[BODY_LEN];
	uint8		raw[RAW_LEN + 3];	/* pg_b64_dec_len may round up */
	uint32		crc;
	bool		ok;

	if (token == NULL || len != TP_TOKEN_TEXT_LEN ||
		memcmp(token, TP_TOKEN_PREFIX, TP_TOKEN_PREFIX_LEN) != 0)
		return false;
	for (int i = 0; i < BODY_LEN; i++)
	{
		char		c = token[TP_TOKEN_PREFIX_LEN + i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		body[i] = c;
	}
	from_url_alphabet(body, BODY_LEN);
	ok = tp_b64_decode(body, BODY_LEN, raw, sizeof(raw)) == RAW_LEN;
	if (ok)
	{
		crc = checksum(raw);
		ok = raw[TP_TOKEN_SECRET_LEN + 0] == (uint8) (crc >> 24) &&
			raw[TP_TOKEN_SECRET_LEN + 1] == (uint8) (crc >> 16) &&
			raw[TP_TOKEN_SECRET_LEN + 2] == (uint8) (crc >> 8) &&
			raw[TP_TOKEN_SECRET_LEN + 3] == (uint8) crc;
	}
	explicit_bzero(body, sizeof(body));
	explicit_bzero(raw, sizeof(raw));
	return ok;
}

/*
 * SHA-256 of the token text, as stored (= pgcrypto's digest(token,
 * 'sha256')).  OpenSSL's SHA-256, fetched once per backend: PostgreSQL's
 * pg_cryptohash wrapper looks the algorithm up again on every call, which
 * was a quarter of verify_token's time.  The context is cleansed after
 * each use, since its buffer held the token.
 */
void
tp_token_hash(const char *token, size_t len, uint8 *digest)
{
	static EVP_MD *sha256 = NULL;
	static EVP_MD_CTX *ctx = NULL;
	unsigned int outlen = 0;
	bool		ok;

	if (sha256 == NULL)
		sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (ctx == NULL)
		ctx = EVP_MD_CTX_new();
	ok = sha256 != NULL && ctx != NULL &&
		EVP_DigestInit_ex2(ctx, sha256, NULL) == 1 &&
		EVP_DigestUpdate(ctx, token, len) == 1 &&
		EVP_DigestFinal_ex(ctx, digest, &outlen) == 1 &&
		outlen == PG_SHA256_DIGEST_LENGTH;
	if (ctx)
		(void) EVP_MD_CTX_reset(ctx);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute SHA-256 with OpenSSL")));
}
