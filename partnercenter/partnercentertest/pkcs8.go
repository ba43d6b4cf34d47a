package partnercentertest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
)

// EncryptClientKey returns pemData with its "PRIVATE KEY" block encrypted
// with password as openssl pkcs8 -topk8 -v2 aes-256-cbc does: PKCS#8
// PBES2, PBKDF2 with HMAC-SHA256, AES-256-CBC.
func EncryptClientKey(pemData []byte, password string) ([]byte, error) {
	var out bytes.Buffer
	found := false
	for block, rest := pem.Decode(pemData); block != nil; block, rest = pem.Decode(rest) {
		if block.Type == "PRIVATE KEY" {
			der, err := encryptPKCS8(block.Bytes, password)
			if err != nil {
				return nil, err
			}
			block, found = &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}, true
		}
		if err := pem.Encode(&out, block); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, errors.New("no PRIVATE KEY block")
	}
	return out.Bytes(), nil
}

type algorithm = pkix.AlgorithmIdentifier

var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

const pbkdf2Iterations = 2048 // as openssl writes

func encryptPKCS8(plain []byte, password string) ([]byte, error) {
	salt, iv := make([]byte, 16), make([]byte, aes.BlockSize)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(iv)
	key, err := pbkdf2.Key(sha256.New, password, salt, pbkdf2Iterations, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	data := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, data)

	kdfParams, err := asn1.Marshal(struct {
		Salt       []byte
		Iterations int
		PRF        algorithm
	}{salt, pbkdf2Iterations, algorithm{Algorithm: oidHMACWithSHA256, Parameters: asn1.NullRawValue}})
	if err != nil {
		return nil, err
	}
	ivParam, err := asn1.Marshal(iv)
	if err != nil {
		return nil, err
	}
	pbes2, err := asn1.Marshal(struct{ KDF, Scheme algorithm }{
		algorithm{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdfParams}},
		algorithm{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivParam}},
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct {
		Algorithm algorithm
		Data      []byte
	}{algorithm{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: pbes2}}, data})
}
