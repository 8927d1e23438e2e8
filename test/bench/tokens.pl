#!/usr/bin/env perl
# Token texts for the benchmark, in the extension's format:
#   tgtp_ + base64url( 32 random bytes || big-endian CRC-32C of them )
#
#   perl tokens.pl N      N lines "i<TAB>unknown<TAB>malformed" for COPY:
#                         unknown   = checksum-valid, so verify_token hashes it
#                                     and looks it up (and finds nothing);
#                         malformed = same text with the checksum broken, so
#                                     verify_token refuses it before any lookup.
#   perl tokens.pl --check TOKEN
#                         exit 0 when TOKEN's checksum is right (used on a
#                         token from generate_token, to prove this CRC-32C
#                         agrees with the extension's).
#
# These tokens authenticate nothing: the random bytes need not come from a
# CSPRNG, and CRC-32C is a checksum, not a cryptographic primitive.
use strict;
use warnings;
use MIME::Base64 qw(encode_base64 decode_base64);

my @table;
for my $n (0 .. 255) {
	my $c = $n;
	$c = ($c & 1) ? (($c >> 1) ^ 0x82F63B78) : ($c >> 1) for 1 .. 8;
	$table[$n] = $c;
}

sub crc32c {
	my $crc = 0xFFFFFFFF;
	$crc = $table[($crc ^ $_) & 0xFF] ^ ($crc >> 8) for unpack 'C*', $_[0];
	return $crc ^ 0xFFFFFFFF;
}

sub to_text {
	my $b = encode_base64($_[0], '');
	$b =~ tr{+/}{-_};
	return "tgtp_$b";
}

if (@ARGV == 2 && $ARGV[0] eq '--check') {
	my $t = $ARGV[1];
	exit 1 unless $t =~ /^tgtp_([A-Za-z0-9_-]{48})$/;
	(my $b = $1) =~ tr{-_}{+/};
	my $raw = decode_base64($b);
	exit 1 unless length($raw) == 36;
	exit(unpack('N', substr($raw, 32)) == crc32c(substr($raw, 0, 32)) ? 0 : 1);
}

my $n = $ARGV[0] // die "usage: $0 N | --check TOKEN\n";
srand(42);
for my $i (1 .. $n) {
	my $secret = pack 'C*', map { int(rand(256)) } 1 .. 32;
	my $crc = crc32c($secret);
	print join("\t", $i, to_text($secret . pack('N', $crc)),
		to_text($secret . pack('N', $crc ^ 1))), "\n";
}
