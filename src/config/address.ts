/** The address schema an exchange adapter's config uses. */
import { type Address, getAddress, isAddress } from "viem";
import { z } from "zod";

const HEX_ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** A 20-byte hex address; a mixed-case one must carry a valid EIP-55 checksum (a typo shows there). Checksummed out. */
export const checkedAddress = z
  .string()
  .regex(HEX_ADDRESS, "must be a 0x-prefixed 20-byte hex address")
  .refine((v) => !HEX_ADDRESS.test(v) || isAddress(v, { strict: true }), {
    message: "has a wrong EIP-55 checksum (mixed case): check for a typo, or write it all in lower case",
  })
  .transform((v): Address => getAddress(v));
