#!/bin/sh
# perl on tinymalloc: hashes, sorting, regexes, string growth, pack/unpack
# and sprintf over a few hundred thousand values must print exactly what the
# plain run prints. Argument: PERL.
. "$(dirname "$0")/lib.sh"
PERL=$1
cat >"$WORK/workload.pl" <<'PERLCODE'
use strict;
use warnings;
my $x = 12345;
sub lcg { $x = ($x * 1103515245 + 12345) % 2147483648; return $x; }
my %count;
my @words;
for my $i (1 .. 150000) {
  my $w = join '', map { chr(97 + lcg() % 26) } 1 .. (1 + lcg() % 12);
  push @words, $w;
  $count{substr($w, 0, 2)}++;
}
my @sorted = sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count;
print scalar(@sorted), " prefixes, top: @sorted[0 .. 9]\n";
my $text = join ' ', @words;
my $vowels = () = $text =~ /[aeiou]{2,}/g;
(my $swapped = $text) =~ s/(\w)(\w*)/\U$1\E$2/g;
print length($text), " chars, $vowels vowel runs, ", substr($swapped, 0, 60), "\n";
my %index;
push @{ $index{length $_} }, $_ for @words;
print join(',', map { "$_:" . scalar(@{ $index{$_} }) } sort { $a <=> $b } keys %index), "\n";
my $packed = pack 'N*', map { lcg() } 1 .. 100000;
my $sum = 0;
$sum = ($sum + $_) % 1000000007 for unpack 'N*', $packed;
print length($packed), " packed bytes, sum $sum\n";
my $buffer = '';
$buffer .= sprintf("%06d|%s;", $_, $words[$_ % @words]) for 1 .. 100000;
print length($buffer), " ", unpack('%32C*', $buffer), "\n";
delete $count{$_} for grep { /^[a-m]/ } keys %count;
print scalar(keys %count), " prefixes left\n";
PERLCODE
"$PERL" "$WORK/workload.pl" >"$WORK/plain.out"
preload "$PERL" "$WORK/workload.pl" >"$WORK/tm.out" 2>"$WORK/tm.err"
expect_same "$WORK/plain.out" "$WORK/tm.out" "perl workload"
expect_interposed "$WORK/tm.err" 100000 "perl"
echo "PASS: perl"
