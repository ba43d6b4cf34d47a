package auth

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is PBKDF2's default PRF, still used by older tools; it is not used as a digest.
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
)

// An "ENCRYPTED PRIVATE KEY" is a PKCS#8 EncryptedPrivateKeyInfo (RFC
// 5958). The standard library does not decrypt it, and the one scheme in
// use today, PBES2 with PBKDF2 and AES-CBC (RFC 8018; what openssl pkcs8
// -topk8 -v2 aes-256-cbc and openssl genpkey -aes256 write), takes little
// code with crypto/pbkdf2, so it is done here rather than with a library.
// PBES1 (DES, RC2) is refused.

var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES128CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// maxPBKDF2Iterations bounds the work a crafted key file can demand;
// tools write 2048 (openssl) to a few hundred thousand.
const maxPBKDF2Iterations = 10_000_000

type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KeyDerivation pkix.AlgorithmIdentifier
	Encryption    pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

// errWrongPassword covers a wrong password and a damaged key alike: CBC
// cannot tell them apart.
var errWrongPassword = errors.New("cannot decrypt the private key: wrong password, or the key is damaged")

// decryptPKCS8 returns the PKCS#8 PrivateKeyInfo inside an
// EncryptedPrivateKeyInfo.
func decryptPKCS8(der, password []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if err := unmarshalAll(der, &info); err != nil {
		return nil, fmt.Errorf("encrypted private key: %w", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("the private key is encrypted with %v; only PBES2 (e.g. openssl pkcs8 -topk8 -v2 aes-256-cbc) is supported", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if err := unmarshalAll(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("encrypted private key: PBES2 parameters: %w", err)
	}
	block, iv, err := aesCBC(params.Encryption)
	if err != nil {
		return nil, err
	}
	key, err := pbkdf2Key(params.KeyDerivation, password, block)
	if err != nil {
		return nil, err
	}
	return cbcDecrypt(key, iv, info.Data)
}

// aesCBC returns the AES key size and the IV of the encryption scheme.
func aesCBC(scheme pkix.AlgorithmIdentifier) (keySize int, iv []byte, err error) {
	switch {
	case scheme.Algorithm.Equal(oidAES128CBC):
		keySize = 16
	case scheme.Algorithm.Equal(oidAES192CBC):
		keySize = 24
	case scheme.Algorithm.Equal(oidAES256CBC):
		keySize = 32
	default:
		return 0, nil, fmt.Errorf("the private key is encrypted with %v; only AES-CBC is supported", scheme.Algorithm)
	}
	if err := unmarshalAll(scheme.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return 0, nil, errors.New("encrypted private key: bad AES-CBC IV")
	}
	return keySize, iv, nil
}

// pbkdf2Key derives the AES key from the password.
func pbkdf2Key(kdf pkix.AlgorithmIdentifier, password []byte, keySize int) ([]byte, error) {
	if !kdf.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("the private key's key derivation %v is not supported; only PBKDF2 is", kdf.Algorithm)
	}
	var p pbkdf2Params
	if err := unmarshalAll(kdf.Parameters.FullBytes, &p); err != nil {
		return nil, fmt.Errorf("encrypted private key: PBKDF2 parameters: %w", err)
	}
	if p.Iterations < 1 || p.Iterations > maxPBKDF2Iterations || (p.KeyLength != 0 && p.KeyLength != keySize) {
		return nil, errors.New("encrypted private key: unusable PBKDF2 parameters")
	}
	var prf func() hash.Hash
	switch {
	case len(p.PRF.Algorithm) == 0 || p.PRF.Algorithm.Equal(oidHMACWithSHA1):
		prf = sha1.New
	case p.PRF.Algorithm.Equal(oidHMACWithSHA256):
		prf = sha256.New
	default:
		return nil, fmt.Errorf("the private key's PBKDF2 function %v is not supported; HMAC-SHA256 and HMAC-SHA1 are", p.PRF.Algorithm)
	}
	key, err := pbkdf2.Key(prf, string(password), p.Salt, p.Iterations, keySize)
	if err != nil {
		return nil, fmt.Errorf("deriving the key of the private key: %w", err)
	}
	return key, nil
}

// cbcDecrypt decrypts and strips the PKCS#7 padding.
func cbcDecrypt(key, iv, data []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("decrypting the private key: %w", err)
	}
	if len(data) == 0 || len(data)%aes.BlockSize != 0 {
		return nil, errWrongPassword
	}
	plain := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, data)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, errWrongPassword
	}
	return plain[:len(plain)-pad], nil
}

// unmarshalAll is asn1.Unmarshal that refuses trailing data.
func unmarshalAll(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("trailing data")
	}
	return nil
}
