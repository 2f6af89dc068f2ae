/** Visit ids and patient ids of the practice system, as this system takes them. */
export const VISIT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const PIMS_PATIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
